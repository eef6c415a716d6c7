//! A write that fails poisons the log: a real child process appends with
//! `fsync = always` under a file-size limit (`ulimit -f`), so the kernel
//! refuses a write partway; every later append must fail with `Poisoned`,
//! and reopening recovers every acknowledged record.

use std::collections::BTreeMap;
use std::process::Command;

use eddy_log::{Log, LogConfig, Offset};

#[test]
fn failed_write_poisons_and_reopen_recovers() {
    // Proves: after the kernel refuses a write (EFBIG at the file-size
    // limit), the append reports an I/O error, the next append reports
    // `Poisoned` instead of pretending, and a reopen returns every record
    // that was acknowledged before, intact, and accepts appends again.
    let dir = tempfile::tempdir().expect("tempdir");
    // SIGXFSZ is ignored so the write fails with EFBIG instead of killing
    // the child; `ulimit -f 256` caps files at 128 KiB (512-byte blocks in
    // dash, 256 KiB in bash: both below the 1 MiB segment).
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 256 && exec \"$0\" --until-error \"$1\"")
        .arg(env!("CARGO_BIN_EXE_eddy-log-crash-writer"))
        .arg(dir.path())
        .output()
        .expect("run the writer under a file-size limit");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        output.status.success(),
        "writer failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut acked = BTreeMap::new();
    let mut errors = Vec::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "ack" => {
                let base: u64 = f[1].parse().expect("offset");
                let count: u64 = f[2].parse().expect("count");
                for o in base..base + count {
                    acked.insert(o, base);
                }
            }
            "error1" | "error2" => errors.push((f[0], f[1], line.to_string())),
            other => panic!("unexpected line {other}: {line}"),
        }
    }
    assert!(
        acked.len() >= 8,
        "too few appends before the limit: {stdout}"
    );
    assert_eq!(errors.len(), 2, "{stdout}");
    assert_eq!(
        errors[0].1, "io",
        "first failure is the I/O error: {}",
        errors[0].2
    );
    assert!(
        errors[0].2.contains("File too large"),
        "the error names the cause: {}",
        errors[0].2
    );
    assert_eq!(
        errors[1].1, "poisoned",
        "then the log refuses: {}",
        errors[1].2
    );

    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    let next = log.next_offset().0;
    assert!(
        next >= acked.len() as u64,
        "acknowledged records lost: next {next}"
    );
    let mut seen = 0u64;
    for batch in log.read(Offset(0), usize::MAX).expect("read all") {
        for record in batch.records() {
            assert_eq!(record.offset.0, seen, "offsets contiguous");
            let key = String::from_utf8(record.key.clone().expect("key").to_vec()).expect("key");
            assert!(key.starts_with("p-s"), "intact key {key}");
            seen += 1;
        }
    }
    assert_eq!(seen, next);
    log.append(eddy_log::Record::new("after"))
        .expect("append after reopen");
}
