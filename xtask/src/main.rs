//! `cargo xtask …`: the developer workflow (reset, seed, validate, dev-fresh, install-hooks). See `cargo xtask help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    xtask::run(std::env::args().skip(1).collect())
}
