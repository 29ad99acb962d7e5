//! What this process has used so far, from `/proc/self` (Linux): peak resident memory and CPU
//! time, for the `run --once` summary that benchmarks and admins read. Elsewhere: nothing.

/// Peak resident set size (`VmHWM`) in KiB, if the platform says.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_hwm_kib(&status)
}

/// CPU time (user + system) in milliseconds, if the platform says.
pub fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Clock ticks are 100 per second on every Linux the service targets (USER_HZ).
    cpu_ticks(&stat).map(|t| t * 10)
}

/// `VmHWM:   53212 kB` → 53212. Pure.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, read after the command name, which
/// may hold spaces and parentheses. Pure.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_and_stat() {
        let status =
            "Name:\tentra-writeback\nVmPeak:\t  900 kB\nVmHWM:\t   53212 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(53212));
        assert_eq!(vm_hwm_kib("Name: x\n"), None);
        let stat = "4242 (entra (write) back) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_reports_itself() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
        assert!(cpu_ms().is_some());
    }
}
