//! The leak scanner's throughput over ordinary source text: every `.rs` file of this workspace,
//! concatenated in memory (repeated to at least 32 MiB), with a few real secrets of each kind inserted.
//! One thread; criterion reports bytes per second.
//!
//! `cargo bench -p tollgate-types --bench scan`

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_types::{SecretScanner, TokenPrefix, TokenSecret};

const MIN_BYTES: usize = 32 << 20;
const SECRETS_PER_KIND: usize = 4;

fn collect_sources(dir: &Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.extend_from_slice(&bytes);
        }
    }
}

fn corpus(prefixes: &[TokenPrefix]) -> Vec<u8> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sources = Vec::new();
    collect_sources(&workspace, &mut sources);
    assert!(!sources.is_empty(), "no .rs files under {}", workspace.display());
    let mut corpus = Vec::with_capacity(MIN_BYTES + sources.len());
    while corpus.len() < MIN_BYTES {
        corpus.extend_from_slice(&sources);
    }
    let step = corpus.len() / (prefixes.len() * SECRETS_PER_KIND + 1);
    for (index, prefix) in prefixes.iter().cycle().take(prefixes.len() * SECRETS_PER_KIND).enumerate() {
        let secret = TokenSecret::generate(prefix).unwrap();
        let at = (index + 1) * step;
        let line = format!("\nlet leaked = \"{}\";\n", secret.expose());
        corpus.splice(at..at, line.into_bytes());
    }
    corpus
}

fn scan(c: &mut Criterion) {
    let prefixes: Vec<TokenPrefix> =
        ["tg", "tgr", "tga"].iter().map(|text| TokenPrefix::parse(text).unwrap()).collect();
    let scanner = SecretScanner::new(prefixes.clone());
    let corpus = corpus(&prefixes);
    // The sources hold test fixtures with valid checksums of their own: at least the inserted ones.
    assert!(scanner.scan(&corpus).len() >= prefixes.len() * SECRETS_PER_KIND);
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    group.sample_size(20);
    group.bench_function("workspace_sources", |b| b.iter(|| scanner.scan(std::hint::black_box(&corpus)).len()));
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
