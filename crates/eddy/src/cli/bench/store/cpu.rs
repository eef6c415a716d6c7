//! CPU time spent by this process, and by the server's processes, from
//! `/proc` (Linux): what an append costs in CPU, whatever the machine's
//! other load.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: u64 = 100;

/// User + system CPU time so far of this process and of every process
/// whose name (`comm`) is one of `names`; `None` where `/proc` is missing.
pub(super) fn used(names: &[&str]) -> Option<Duration> {
    let mut ticks = ticks_in(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    if !names.is_empty() {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if !names.contains(&comm.trim()) {
                continue;
            }
            // A process may end between the two reads.
            if let Some(t) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| ticks_in(&s))
            {
                ticks += t;
            }
        }
    }
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

/// `utime + stime` of one `/proc/<pid>/stat` line (fields 14 and 15; the
/// name before them is in parentheses and may hold spaces).
fn ticks_in(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU time used while `f` ran, with the result of `f`.
pub(super) fn during<T>(names: &[&str], f: impl FnOnce() -> T) -> (T, Option<Duration>) {
    let before = used(names);
    let out = f();
    let after = used(names);
    let spent = before.zip(after).map(|(b, a)| a.saturating_sub(b));
    (out, spent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_ticks() {
        let line = "2232 (postgres: 15/main: x) S 2231 2231 2231 0 -1 4194368 1207 0 0 0 73 41 0 0 20 0 1 0 1400 225000000 3000 18446744073709551615";
        assert_eq!(ticks_in(line), Some(114));
        assert_eq!(ticks_in("12 (short) S 1"), None);
        assert!(used(&[]).is_some(), "this process has a stat file");
    }
}
