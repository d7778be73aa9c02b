//! What this machine and this process have: the memory the process may use, the memory it
//! holds, its CPU time and its open files. Read from Linux's `/proc` and cgroup files; `None` elsewhere. A leaf module, so that
//! settings, the HTTP layer and the benchmark can all ask without depending on each other.

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (the
/// allocator's own switch, which then decides).
///
/// The allocator asks the kernel for huge pages on its arenas, and a 2 MiB page stays resident
/// whole as long as one byte of it is live: after a large store the process held 1.8 times the
/// engine's memory estimate (7.4 times at 10,000 patterns), against 1.4 without them, while
/// queries ran about 5% slower without them (`tools/load/memory.py`, `dendrite bench`). Memory that
/// tracks the estimate is what the memory limit relies on, so off is the default; the README
/// says how to turn them back on. Called first thing in `main`: the flag covers every later
/// page fault of the process. Where the kernel refuses (or is not Linux), nothing changes.
pub fn limit_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

/// The memory this process may use: the smallest of the cgroup's limit (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`) and the machine's `MemTotal`. `None` where none can be read.
pub fn available_memory() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    [
        read("/sys/fs/cgroup/memory.max").and_then(|text| cgroup_limit(&text)),
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(|text| cgroup_limit(&text)),
        read("/proc/meminfo").and_then(|text| mem_total(&text)),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// This process's resident memory (RSS), where the operating system reports it (Linux's
/// `/proc/self/status`).
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time this process has used, user and system, in seconds (Linux's `/proc/self/stat`,
/// whose counts are in USER_HZ ticks: 100 a second on every Linux ABI).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat)
}

/// Open file descriptors (sockets included): the entries of `/proc/self/fd`.
pub fn open_files() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing one.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), ..., utime (14) and stime (15) are the 12th and 13th.
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

/// A cgroup memory limit in bytes; `None` for no limit (`max`, or v1's near-`i64::MAX` value).
fn cgroup_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_totals_are_read_in_bytes() {
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712\n"), None, "v1's no limit");
        assert_eq!(cgroup_limit("2147483648\n"), Some(2 << 30));
        let meminfo = "MemTotal:       24567892 kB\nMemFree:  1000 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_567_892 * 1024));
    }

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (dendrite (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 123 456 789";
        assert_eq!(cpu_seconds_of(stat), Some(3.25));
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds().is_some() && open_files().unwrap() > 0);
        }
    }

    #[test]
    fn the_resident_memory_is_read_where_linux_reports_it() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(resident_memory().unwrap() > 0);
        }
    }
}
