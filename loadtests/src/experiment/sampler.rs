//! CPU and memory of the server's process tree, from `/proc`: the tree of
//! a pid ([`process_tree`]), one process's figures ([`ProcStat`]), and a
//! background [`Sampler`] over a run that also counts workers that came and
//! went between samples. It reads `/proc` only; it never signals or starts
//! a process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procfs::prelude::*;
use procfs::process::{all_processes, Process, Stat};
use serde::{Deserialize, Serialize};

/// `pid` and all its descendants, from `/proc/*/stat`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| Some((p.pid as u32, p.stat().ok()?.ppid as u32)))
        .collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for (p, pp) in &parent_of {
            if *pp == cur && !out.contains(p) {
                out.push(*p);
            }
        }
        i += 1;
    }
    out
}

/// The fields of `/proc/PID/stat` the sampler uses.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime: CPU of the children this process has reaped (a
    /// supervisor's recycled workers), clock ticks.
    pub child_cpu_ticks: u64,
    pub rss_bytes: u64,
    pub comm: String,
}

impl ProcStat {
    /// Reads a process's stat; `None` if it is gone.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = Process::new(pid as i32).ok()?.stat().ok()?;
        Some(Self::from_stat(&stat))
    }

    /// Parses the text of a `/proc/PID/stat`.
    pub fn parse_stat(s: &str) -> Option<Self> {
        Stat::from_read(s.as_bytes())
            .ok()
            .map(|st| Self::from_stat(&st))
    }

    fn from_stat(st: &Stat) -> Self {
        Self {
            ppid: st.ppid as u32,
            cpu_ticks: st.utime + st.stime,
            child_cpu_ticks: (st.cutime + st.cstime).max(0) as u64,
            rss_bytes: st.rss_bytes().get(),
            comm: st.comm.clone(),
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

/// CPU and memory of one server process over a measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub name: String,
    /// CPU seconds used during the run.
    pub cpu_s: f64,
    /// `cpu_s / run seconds`: cores kept busy.
    pub cpu_cores: f64,
    pub max_rss_mb: f64,
}

/// Samples a process tree's CPU and RSS in the background.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<Mutex<SamplerState>>,
    started: Instant,
}

#[derive(Default)]
struct SamplerState {
    first: BTreeMap<u32, ProcStat>,
    last: BTreeMap<u32, ProcStat>,
    max_rss: BTreeMap<u32, u64>,
    /// The tree as read by the first and by the latest sample.
    first_sample: BTreeMap<u32, ProcStat>,
    latest_sample: BTreeMap<u32, ProcStat>,
    /// Largest sum of RSS over the processes alive in one sample.
    peak_total_rss: u64,
}

impl SamplerState {
    fn sample(&mut self, root: u32) {
        let mut now = BTreeMap::new();
        for p in process_tree(root) {
            if let Some(st) = ProcStat::read(p) {
                let rss = st.rss_bytes;
                self.first.entry(p).or_insert_with(|| st.clone());
                let m = self.max_rss.entry(p).or_insert(0);
                *m = (*m).max(rss);
                self.last.insert(p, st.clone());
                now.insert(p, st);
            }
        }
        self.peak_total_rss = self
            .peak_total_rss
            .max(now.values().map(|s| s.rss_bytes).sum());
        if self.first_sample.is_empty() {
            self.first_sample = now.clone();
        }
        self.latest_sample = now;
    }

    /// CPU ticks the whole tree used between the first and latest samples,
    /// including processes that started and ended in between (recycled
    /// workers): each live process's own and reaped children's time, now
    /// minus then.
    fn tree_cpu_ticks(&self) -> u64 {
        let total = |m: &BTreeMap<u32, ProcStat>| -> u64 {
            m.values().map(|s| s.cpu_ticks + s.child_cpu_ticks).sum()
        };
        total(&self.latest_sample).saturating_sub(total(&self.first_sample))
    }
}

/// What a [`Sampler`] measured over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledUsage {
    /// Per process seen (processes that came and went included).
    pub processes: Vec<ProcessUsage>,
    /// CPU seconds of the whole tree, recycled workers included.
    pub cpu_s: f64,
    /// `cpu_s / run seconds`.
    pub cpu_cores: f64,
    /// The largest total RSS of the processes alive at one time.
    pub peak_rss_mb: f64,
}

impl Sampler {
    /// Starts sampling `root` and its descendants every `period`.
    pub fn start(root: u32, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        state.lock().expect("fresh mutex").sample(root);
        let (s2, st2) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(period);
                st2.lock().expect("sampler mutex").sample(root);
            }
        });
        Self {
            stop,
            thread: Some(thread),
            state,
            started: Instant::now(),
        }
    }

    /// Stops and returns the usage of the tree and of each process
    /// (processes that came and went during the run included).
    pub fn finish(mut self, root: u32) -> SampledUsage {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut st = self.state.lock().expect("sampler mutex");
        st.sample(root);
        let hz = clock_ticks_per_second();
        let processes = st
            .last
            .iter()
            .map(|(pid, last)| {
                let first = st.first.get(pid).map(|f| f.cpu_ticks).unwrap_or(0);
                let cpu_s = last.cpu_ticks.saturating_sub(first) as f64 / hz;
                ProcessUsage {
                    pid: *pid,
                    name: last.comm.clone(),
                    cpu_s,
                    cpu_cores: cpu_s / elapsed,
                    max_rss_mb: st.max_rss.get(pid).copied().unwrap_or(0) as f64 / 1_048_576.0,
                }
            })
            .collect();
        let cpu_s = st.tree_cpu_ticks() as f64 / hz;
        SampledUsage {
            processes,
            cpu_s,
            cpu_cores: cpu_s / elapsed,
            peak_rss_mb: st.peak_total_rss as f64 / 1_048_576.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let s = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 123 1000 50 18446744073709551615 \
            94017844006912 94017844026793 140720517943648 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 \
            94017844042800 94017844044416 94018412122112 140720517950178 140720517950198 140720517950198 140720517951467 0";
        let st = ProcStat::parse_stat(s).unwrap();
        assert_eq!(st.comm, "my (odd) prog");
        assert_eq!(st.ppid, 1);
        assert_eq!(st.cpu_ticks, 300);
        // RSS is field 24, in pages
        assert_eq!(st.rss_bytes, 50 * procfs::page_size());
        // this process is in its own tree and readable
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
        assert!(ProcStat::read(me).unwrap().rss_bytes > 0);
    }

    /// The sampler sees CPU burnt by a child process.
    #[test]
    fn samples_a_child() {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
            .spawn()
            .unwrap();
        let s = Sampler::start(child.id(), Duration::from_millis(20));
        let _ = child.wait();
        let usage = s.finish(child.id());
        // the shell's own entry was sampled before it exited
        assert!(usage.processes.iter().any(|u| u.pid == child.id()));
    }

    /// Workers that start and end between two samples (a supervisor
    /// recycling them) still count: their CPU arrives in the parent's reaped
    /// children's time, and RSS is the peak of what was alive at once, not a
    /// sum over every process ever seen.
    #[test]
    fn short_lived_children_count_toward_cpu_but_not_twice_toward_rss() {
        // A parent that runs 20 short CPU-burning children one after another,
        // then stays alive (not a zombie, whose RSS reads 0) until killed.
        let script = "for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
             sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done; exec sleep 30";
        let mut parent = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .spawn()
            .unwrap();
        let s = Sampler::start(parent.id(), Duration::from_millis(500));
        // Finish while the parent (which reaps the children) is still alive.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && ProcStat::read(parent.id()).is_some_and(|p| p.child_cpu_ticks < 20)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let reaped = ProcStat::read(parent.id()).map_or(0, |p| p.child_cpu_ticks) as f64
            / clock_ticks_per_second();
        let usage = s.finish(parent.id());
        let _ = parent.kill();
        let _ = parent.wait();
        // Per-process sampling misses the children that lived between two
        // samples; the tree total does not.
        let seen: f64 = usage.processes.iter().map(|p| p.cpu_s).sum();
        assert!(reaped >= 0.2, "the children burnt CPU: {reaped}");
        assert!(
            usage.cpu_s >= reaped * 0.9 && usage.cpu_s >= seen,
            "tree {} s, reaped children {reaped} s, per-process sum {seen} s",
            usage.cpu_s
        );
        let sum_of_maxima: f64 = usage.processes.iter().map(|p| p.max_rss_mb).sum();
        assert!(
            usage.peak_rss_mb > 0.0 && usage.peak_rss_mb <= sum_of_maxima + 1e-9,
            "peak {} MB, sum of each process's maximum {sum_of_maxima} MB: {:?}",
            usage.peak_rss_mb,
            usage.processes
        );
    }
}
