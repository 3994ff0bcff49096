//! Facts about processes, read from `/proc` and `sysconf`: resident memory,
//! page size, thread count. Reads only; decides nothing.

/// Resident set size of this process.
pub fn rss_bytes() -> Option<u64> {
    statm_rss("/proc/self/statm")
}

/// Resident set size of process `pid` (the supervisor reads its workers').
pub fn rss_bytes_of(pid: i32) -> Option<u64> {
    statm_rss(&format!("/proc/{pid}/statm"))
}

/// The second field of a `statm` file is the resident size in pages.
fn statm_rss(path: &str) -> Option<u64> {
    let statm = std::fs::read_to_string(path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The memory page size (4096 when it cannot be read).
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(4096)
}

/// Threads of this process (the supervisor asserts it is 1 before forking).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_pages_and_threads() {
        assert!(page_size().is_power_of_two());
        let rss = rss_bytes().unwrap();
        assert!(rss > 0 && rss % page_size() == 0);
        assert_eq!(
            rss_bytes_of(std::process::id() as i32).map(|r| r > 0),
            Some(true)
        );
        assert!(thread_count() >= 1);
    }
}
