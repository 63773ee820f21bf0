//! The fuzz targets' checks over the committed corpus, as a plain `cargo test`: every file in
//! `tests/data` (RFC 4475 and RFC 5118 torture messages, raw and wire forms), the fuzz seeds in
//! `tests/fuzz/seeds/`, and the inputs that once broke a target, in `tests/fuzz/regressions/`
//! (named `datagram-*` or `stream-*` after the target that found them).
//!
//! The checks themselves live in `tests/fuzz/src/lib.rs` and are compiled into this test
//! unchanged, so libFuzzer and `cargo test` hold the code to the same properties. Each file is
//! checked on its own and every failure is listed by file name before the test fails.

// Tests read the clock once, as a virtual epoch; nothing waits on it.
#![allow(clippy::disallowed_methods)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "../../tests/fuzz/src/lib.rs"]
mod checks;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("controlplane/ sits in the repository root")
        .to_path_buf()
}

/// Every regular file under `dir`, recursively, sorted so failures list in a stable order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Datagram,
    Stream,
}

/// Run one check per (file, target), catching panics so every failing file is named.
fn run(inputs: &[(PathBuf, Target)]) -> usize {
    let now = Instant::now();
    let mut failures = Vec::new();
    for (path, target) in inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let result = catch_unwind(AssertUnwindSafe(|| match target {
            Target::Datagram => checks::datagram(&data, now),
            Target::Stream => checks::stream(&data, now),
        }));
        if let Err(panic) = result {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            let first_line = msg.lines().next().unwrap_or("");
            failures.push(format!("{target:?} {}: {first_line}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    inputs.len()
}

/// Each torture file as one datagram, and as a TCP stream read in three different ways
/// (the stream target takes its first byte as the read-size seed).
#[test]
fn torture_files_pass_the_fuzz_checks() {
    let data = repo().join("tests/data");
    let mut inputs = Vec::new();
    let mut streams = Vec::new();
    for path in files(&data) {
        inputs.push((path.clone(), Target::Datagram));
        let bytes = std::fs::read(&path).expect("readable test data");
        for seed in [0u8, 1, 200] {
            let mut input = vec![seed];
            input.extend_from_slice(&bytes);
            streams.push((path.display().to_string(), input));
        }
    }
    let n = run(&inputs);
    assert!(n >= 49 + 12 + 12, "torture corpus missing: only {n} files");

    let now = Instant::now();
    let mut failures = Vec::new();
    for (name, input) in &streams {
        if catch_unwind(|| checks::stream(input, now)).is_err() {
            failures.push(format!("stream (seed {}) {name}", input[0]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_seeds_pass_the_fuzz_checks() {
    let seeds = repo().join("tests/fuzz/seeds");
    let mut inputs: Vec<(PathBuf, Target)> = files(&seeds.join("datagram"))
        .into_iter()
        .map(|p| (p, Target::Datagram))
        .collect();
    inputs.extend(
        files(&seeds.join("stream"))
            .into_iter()
            .map(|p| (p, Target::Stream)),
    );
    assert!(run(&inputs) > 0, "no fuzz seeds found");
}

/// Inputs that made a fuzz target fail, kept so the bug stays fixed.
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = repo().join("tests/fuzz/regressions");
    if !dir.exists() {
        return;
    }
    let inputs: Vec<(PathBuf, Target)> = files(&dir)
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            if name.starts_with("datagram") {
                Some((p, Target::Datagram))
            } else if name.starts_with("stream") {
                Some((p, Target::Stream))
            } else {
                None
            }
        })
        .collect();
    run(&inputs);
}
