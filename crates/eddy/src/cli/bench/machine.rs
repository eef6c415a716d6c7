//! A description of the machine a benchmark ran on, for its report.

use std::fs;
use std::path::Path;

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory: Option<String>,
    pub kernel: Option<String>,
    /// Device, mount point and type of the file system holding the bench directory.
    pub filesystem: Option<String>,
}

impl Machine {
    /// Describes this machine; `dir` is where the benchmark writes.
    /// Whatever cannot be found out is left out.
    pub fn describe(dir: &Path) -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(),
            memory: memory(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").map(|k| format!("Linux {k}")),
            filesystem: filesystem(dir),
        }
    }

    /// One line per fact: `cpus: 8 (AMD …)`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![match &self.cpu_model {
            Some(model) => format!("cpus: {} ({model})", self.cpus),
            None => format!("cpus: {}", self.cpus),
        }];
        let facts = [
            ("memory", &self.memory),
            ("kernel", &self.kernel),
            ("file system", &self.filesystem),
        ];
        for (name, value) in facts {
            if let Some(value) = value {
                lines.push(format!("{name}: {value}"));
            }
        }
        lines
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
}

/// `MemTotal` of /proc/meminfo, in GiB.
fn memory() -> Option<String> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

/// The /proc/mounts entry with the longest mount point containing `dir`.
fn filesystem(dir: &Path) -> Option<String> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
            let mount_point = mount_point.replace("\\040", " ");
            dir.starts_with(&mount_point)
                .then(|| (mount_point, device.to_string(), fs_type.to_string()))
        })
        .max_by_key(|(mount_point, _, _)| mount_point.len())
        .map(|(mount_point, device, fs_type)| {
            format!("{fs_type} on {device} (mounted at {mount_point})")
        })
}

/// The command line that started this process, quoted for a shell where needed.
pub fn command_line() -> String {
    std::env::args()
        .map(|arg| shell_quote(&arg))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// CPU time of all CPUs so far, from the first line of `/proc/stat`:
/// (all of it, of which stolen by the hypervisor), in clock ticks.
/// `None` where there is no such file.
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // counted in user already).
    let steal = *ticks.get(7)?;
    Some((ticks.iter().take(8).sum(), steal))
}

/// The share of CPU time the hypervisor stole between two readings of
/// [`cpu_ticks`].
pub fn steal_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((total0, steal0), (total1, steal1)) = (before?, after?);
    let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
    Some(steal1.saturating_sub(steal0) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        // Proves the recorded command line can be pasted back into a shell.
        assert_eq!(shell_quote("--seconds=2"), "--seconds=2");
        assert_eq!(shell_quote("interval(10ms)"), "'interval(10ms)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn steal_share_is_stolen_ticks_over_all_ticks() {
        assert_eq!(steal_share(Some((100, 5)), Some((300, 55))), Some(0.25));
        assert_eq!(
            steal_share(Some((100, 5)), Some((100, 5))),
            None,
            "no time passed"
        );
        assert_eq!(steal_share(None, Some((100, 5))), None);
    }
}
