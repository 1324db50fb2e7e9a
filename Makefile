# Thin wrappers over cargo and cargo xtask: no logic lives here (docs/development.md explains each).

.PHONY: run test bench dev-fresh dev-fresh-test validate install-hooks

# Serve ./tollgate.db on 127.0.0.1:8080 (the README's run command).
run:
	cargo run --release -p tollgate-cli -- serve

# The whole test suite (the README's test command).
test:
	cargo test --workspace

# Every benchmark; pass criterion flags with BENCH_ARGS="--warm-up-time 1 --measurement-time 3".
bench:
	cargo bench --workspace --benches -- $(BENCH_ARGS)

# A fresh, seeded, validated development database, and the credentials to try it.
dev-fresh:
	cargo xtask dev-fresh

# The same, then the whole test suite.
dev-fresh-test:
	cargo xtask dev-fresh --test

# Every validator: paths, schema, seed.
validate:
	cargo xtask validate

# A pre-commit hook: cargo fmt --check and cargo xtask validate paths.
install-hooks:
	cargo xtask install-hooks
