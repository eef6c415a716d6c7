//! Child process of the SIGKILL crash test (`tests/crash_sigkill.rs`).
//!
//! `eddy-log-crash-writer DIR CYCLE THREADS` opens the log in DIR with
//! `fsync = always` and appends batches from THREADS threads until killed.
//! After each append returns it prints one line to stdout:
//! `ack CYCLE THREAD SEQ COUNT BASE_OFFSET`, meaning records with keys
//! `cCYCLE-tTHREAD-sSEQ` .. `SEQ+COUNT-1` are at offsets BASE_OFFSET.. and
//! were acknowledged as durable. Values are derived from keys
//! ([`value_for`]), so the test can tell an intact record from a damaged one.
//!
//! `eddy-log-crash-writer --until-error DIR` is the child of
//! `tests/poison_after_failed_write.rs`: it appends (one thread, `always`)
//! until an append fails, printing `ack BASE_OFFSET COUNT` per success,
//! then `error1 KIND` for the failure and `error2 KIND` for one more try,
//! where KIND is `io`, `poisoned` or `other`.

use std::io::Write;
use std::sync::Arc;

use eddy_log::{FsyncPolicy, Log, LogConfig, LogError, Record};

/// The value stored with `key`: its bytes repeated to a length set by the key.
fn value_for(key: &str) -> Vec<u8> {
    let len = key.bytes().map(usize::from).sum::<usize>() % 700 + 1;
    key.bytes().cycle().take(len).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, dir] = &args[..]
        && flag == "--until-error"
    {
        append_until_error(dir);
        return;
    }
    let [_, dir, cycle, threads] = &args[..] else {
        eprintln!("usage: eddy-log-crash-writer DIR CYCLE THREADS");
        std::process::exit(2);
    };
    let cycle: u64 = cycle.parse().expect("CYCLE is a number");
    let threads: u64 = threads.parse().expect("THREADS is a number");
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        // Small segments, so that kills also land around rolls.
        segment_bytes_max: 256 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir, config).expect("open log"));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seq = 0u64;
                loop {
                    let count = 1 + (seq * 7 + t) % 9;
                    let records: Vec<Record> = (seq..seq + count)
                        .map(|s| {
                            let key = format!("c{cycle}-t{t}-s{s}");
                            Record::new(value_for(&key)).with_key(key)
                        })
                        .collect();
                    let receipt = log.append_batch(&records).expect("append");
                    let line = format!("ack {cycle} {t} {seq} {count} {}\n", receipt.base_offset.0);
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("stdout");
                    out.flush().expect("stdout");
                    seq += count;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn append_until_error(dir: &str) {
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        segment_bytes_max: 1024 * 1024,
        ..LogConfig::default()
    };
    let log = Log::open(dir, config).expect("open log");
    let kind = |e: &LogError| match e {
        LogError::Io { .. } => "io",
        LogError::Poisoned { .. } => "poisoned",
        _ => "other",
    };
    let mut out = std::io::stdout().lock();
    for seq in 0u64.. {
        let key = format!("p-s{seq}");
        let records = vec![Record::new(value_for(&key)).with_key(key); 4];
        match log.append_batch(&records) {
            Ok(receipt) => writeln!(out, "ack {} {}", receipt.base_offset.0, records.len()),
            Err(e) => {
                writeln!(out, "error1 {} {e}", kind(&e)).expect("stdout");
                let again = log
                    .append_batch(&records)
                    .expect_err("a poisoned log refuses appends");
                writeln!(out, "error2 {} {again}", kind(&again)).expect("stdout");
                return;
            }
        }
        .expect("stdout");
    }
}
