//! A process's memory as the kernel reports it, for the benchmarks. Standalone (no other harness
//! module), so a benchmark without Samba can include this file alone.

/// VmRSS and VmHWM of `pid` (a number, or `self`), in MiB; zeros once the process is gone.
pub fn memory_mib(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}
