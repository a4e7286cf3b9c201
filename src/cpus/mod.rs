//! How many CPUs this process may use, and where that number came from.
//!
//! [`available`] answers "how many workers should a pool start?":
//!
//! 1. `PARPOOL_WORKERS`, the user's explicit choice, if set;
//! 2. otherwise the smallest of every limit it finds:
//!    - the batch scheduler's allocation for this task:
//!      `SLURM_CPUS_PER_TASK` (Slurm's `-c` / `--cpus-per-task`), else
//!      `NCPUS` (PBS Pro);
//!    - the process's CPU affinity mask (`taskset`, `numactl`, Slurm's and
//!      MPI launchers' CPU binding);
//!    - the cgroup CPU quota (containers, Kubernetes limits, systemd
//!      slices; cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`, rounded up);
//! 3. the number of online CPUs of the machine, if nothing limits it.
//!
//! The smallest wins because each is a real limit: under `salloc -c 2`
//! then `srun -n 2`, Slurm still says 2 CPUs per task while binding each
//! task to 1, and two threads on one CPU only take turns. The returned
//! [`Cpus`] carries the count, the [`CpuSource`] that decided it and what
//! every other limit said ([`Cpus::considered`]), so a program can say why
//! it chose what it chose (`cargo run --example cpus`). Values that were
//! present but unusable (`SLURM_CPUS_PER_TASK=abc`, `NCPUS=0`) are
//! skipped and listed in [`Cpus::ignored`]; an unusable `PARPOOL_WORKERS`
//! is an error when a pool is built (`Pool::from_env`).
//!
//! Why not just the hardware count: on a shared cluster node the hardware
//! count is the whole node (say 128) while the job was given 2 CPUs; a pool
//! of 128 workers on 2 CPUs runs slower than one of 2, and slows down the
//! neighbours. This is the classic failure of `multiprocessing.cpu_count()`.

mod cgroup;

use cgroup::cgroup_quota;
use std::fmt;
use std::path::PathBuf;

use crate::env::{SCHEDULER_CPUS as SCHEDULER_VARIABLES, WORKERS as WORKERS_VARIABLE};

/// The number of CPUs to use and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpus {
    count: usize,
    source: CpuSource,
    hardware: usize,
    considered: Vec<(CpuSource, usize)>,
    ignored: Vec<String>,
}

/// Where a [`Cpus`] count came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuSource {
    /// `PARPOOL_WORKERS` was set.
    EnvOverride {
        /// The variable's name.
        variable: &'static str,
    },
    /// A batch scheduler's per-task allocation.
    Scheduler {
        /// The scheduler ("Slurm", "PBS").
        scheduler: &'static str,
        /// The variable that held the count.
        variable: &'static str,
    },
    /// The CPU affinity mask allows fewer CPUs than the machine has (or
    /// than the other limits allow).
    AffinityMask,
    /// A cgroup CPU quota allows fewer CPUs than the affinity mask.
    CgroupQuota {
        /// 1 or 2.
        version: u8,
        /// Microseconds of CPU time allowed per period.
        quota_us: u64,
        /// The period in microseconds.
        period_us: u64,
    },
    /// Nothing limits the process: all online CPUs of the machine.
    Hardware,
}

impl Cpus {
    /// The number of CPUs to use; at least 1.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Where [`count`](Cpus::count) came from.
    pub fn source(&self) -> &CpuSource {
        &self.source
    }

    /// The number of online CPUs of the whole machine.
    pub fn hardware(&self) -> usize {
        self.hardware
    }

    /// Every limit found and the count it allows, the deciding one
    /// included, in the order of the [module docs](self): so a program can
    /// say, for example, that Slurm allocated 2 CPUs but the binding allows
    /// 1. Empty when `PARPOOL_WORKERS` decided.
    pub fn considered(&self) -> &[(CpuSource, usize)] {
        &self.considered
    }

    /// Settings that were present but unusable, and why they were skipped.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }
}

impl fmt::Display for CpuSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuSource::EnvOverride { variable } => write!(f, "the {variable} environment variable"),
            CpuSource::Scheduler {
                scheduler,
                variable,
            } => write!(f, "the {scheduler} allocation ({variable})"),
            CpuSource::AffinityMask => write!(f, "the process's CPU affinity mask"),
            CpuSource::CgroupQuota {
                version,
                quota_us,
                period_us,
            } => write!(
                f,
                "the cgroup v{version} CPU quota ({quota_us} us per {period_us} us, rounded up)"
            ),
            CpuSource::Hardware => write!(f, "the machine's online CPU count"),
        }
    }
}

/// The CPUs this process may use; see the [module docs](self) for the order
/// of the checks.
///
/// ```
/// let cpus = parpool::cpus::available();
/// assert!(cpus.count() >= 1);
/// println!("{} CPUs, from {}", cpus.count(), cpus.source());
/// ```
pub fn available() -> Cpus {
    detect(&SystemProbe)
}

/// The count [`available`] detects when `PARPOOL_WORKERS` is not set,
/// detected once per process (the first time a pool asks), as rayon counts
/// CPUs once: a pool made in a function that runs often reads no cgroup
/// files. A program that changes its own affinity mask later keeps the
/// first count; [`available`] always detects afresh.
pub(crate) fn detected_count() -> usize {
    static DETECTED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| detect(&WithoutOverride(&SystemProbe)).count())
}

/// A probe that does not see `PARPOOL_WORKERS`.
struct WithoutOverride<'a>(&'a dyn Probe);

impl Probe for WithoutOverride<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (name != WORKERS_VARIABLE).then(|| self.0.env(name))?
    }

    fn affinity_count(&self) -> Option<usize> {
        self.0.affinity_count()
    }

    fn hardware_count(&self) -> usize {
        self.0.hardware_count()
    }

    fn proc_self_cgroup(&self) -> Option<String> {
        self.0.proc_self_cgroup()
    }

    fn cgroup_root(&self) -> PathBuf {
        self.0.cgroup_root()
    }
}

/// What detection reads, so tests can feed it fake systems.
pub(crate) trait Probe {
    fn env(&self, name: &str) -> Option<String>;
    fn affinity_count(&self) -> Option<usize>;
    fn hardware_count(&self) -> usize;
    /// The contents of `/proc/self/cgroup`.
    fn proc_self_cgroup(&self) -> Option<String>;
    /// Where cgroup filesystems are mounted (`/sys/fs/cgroup`).
    fn cgroup_root(&self) -> PathBuf;
}

/// The real system.
struct SystemProbe;

impl Probe for SystemProbe {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn affinity_count(&self) -> Option<usize> {
        crate::sys::affinity_count()
    }

    fn hardware_count(&self) -> usize {
        crate::sys::hardware_count()
    }

    fn proc_self_cgroup(&self) -> Option<String> {
        std::fs::read_to_string("/proc/self/cgroup").ok()
    }

    fn cgroup_root(&self) -> PathBuf {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// Parses a CPU count setting: a positive integer.
pub(crate) fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(count) => Ok(count),
        Err(_) => Err("not a positive integer".to_string()),
    }
}

pub(crate) fn detect(probe: &dyn Probe) -> Cpus {
    let hardware = probe.hardware_count().max(1);
    let mut ignored = Vec::new();
    let mut found = |variable: &str| -> Option<usize> {
        let text = probe.env(variable)?;
        parse_count(&text)
            .map_err(|reason| ignored.push(format!("{variable}={text:?} ignored: {reason}")))
            .ok()
    };
    if let Some(count) = found(WORKERS_VARIABLE) {
        return Cpus {
            count,
            source: CpuSource::EnvOverride {
                variable: WORKERS_VARIABLE,
            },
            hardware,
            considered: Vec::new(),
            ignored,
        };
    }
    let mut considered = Vec::new();
    let scheduler = SCHEDULER_VARIABLES
        .iter()
        .find_map(|&(variable, scheduler)| {
            found(variable).map(|count| {
                (
                    CpuSource::Scheduler {
                        scheduler,
                        variable,
                    },
                    count,
                )
            })
        });
    considered.extend(scheduler);
    if let Some(mask) = probe.affinity_count() {
        // A mask of every CPU is no limit: the machine's count says it.
        if mask < hardware {
            considered.push((CpuSource::AffinityMask, mask.max(1)));
        }
    }
    considered.extend(
        cgroup_quota(&probe.cgroup_root(), probe.proc_self_cgroup().as_deref())
            .map(|(count, source)| (source, count)),
    );
    considered.push((CpuSource::Hardware, hardware));
    // The smallest limit; on a tie the earlier one (the more specific).
    let (source, count) = considered
        .iter()
        .fold(None::<&(CpuSource, usize)>, |best, candidate| match best {
            Some(best) if best.1 <= candidate.1 => Some(best),
            _ => Some(candidate),
        })
        .cloned()
        .expect("the hardware count is always there");
    Cpus {
        count,
        source,
        hardware,
        considered,
        ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fake system: environment, affinity, hardware and cgroup files.
    struct FakeProbe {
        env: HashMap<&'static str, &'static str>,
        affinity: Option<usize>,
        hardware: usize,
        cgroup_lines: Option<&'static str>,
        root: PathBuf,
    }

    impl FakeProbe {
        fn new(name: &str) -> FakeProbe {
            let root = std::env::temp_dir()
                .join(format!("parpool-cpus-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("temp dir");
            FakeProbe {
                env: HashMap::new(),
                affinity: Some(64),
                hardware: 64,
                cgroup_lines: None,
                root,
            }
        }

        fn file(&self, relative: &str, contents: &str) {
            let path = self.root.join(relative);
            std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            std::fs::write(path, contents).expect("write");
        }
    }

    impl Drop for FakeProbe {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    impl Probe for FakeProbe {
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).map(|value| value.to_string())
        }
        fn affinity_count(&self) -> Option<usize> {
            self.affinity
        }
        fn hardware_count(&self) -> usize {
            self.hardware
        }
        fn proc_self_cgroup(&self) -> Option<String> {
            self.cgroup_lines.map(str::to_string)
        }
        fn cgroup_root(&self) -> PathBuf {
            self.root.clone()
        }
    }

    #[test]
    fn nothing_set_means_the_hardware_count() {
        let probe = FakeProbe::new("hardware");
        let cpus = detect(&probe);
        assert_eq!((cpus.count(), cpus.source()), (64, &CpuSource::Hardware));
    }

    #[test]
    fn the_env_override_wins_over_everything() {
        let mut probe = FakeProbe::new("override");
        probe.env.insert("PARPOOL_WORKERS", "3");
        probe.env.insert("SLURM_CPUS_PER_TASK", "8");
        probe.affinity = Some(2);
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 3);
        assert_eq!(
            cpus.source(),
            &CpuSource::EnvOverride {
                variable: "PARPOOL_WORKERS"
            }
        );
    }

    #[test]
    fn slurm_allocation_beats_the_mask_and_bad_values_are_reported() {
        let mut probe = FakeProbe::new("slurm");
        probe.env.insert("PARPOOL_WORKERS", "lots");
        probe.env.insert("SLURM_CPUS_PER_TASK", "2");
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 2);
        assert!(matches!(
            cpus.source(),
            CpuSource::Scheduler {
                scheduler: "Slurm",
                ..
            }
        ));
        assert_eq!(
            cpus.ignored(),
            ["PARPOOL_WORKERS=\"lots\" ignored: not a positive integer"]
        );
    }

    #[test]
    fn a_binding_narrower_than_the_allocation_wins_and_both_are_reported() {
        // `salloc -c 2`, then `srun -n 2`: each task bound to 1 CPU.
        for variable in ["SLURM_CPUS_PER_TASK", "NCPUS"] {
            let mut probe = FakeProbe::new(&format!("narrow-{variable}"));
            probe.env.insert(variable, "2");
            probe.affinity = Some(1);
            let cpus = detect(&probe);
            assert_eq!((cpus.count(), cpus.source()), (1, &CpuSource::AffinityMask));
            let scheduler = cpus
                .considered()
                .iter()
                .find(|(source, _)| matches!(source, CpuSource::Scheduler { .. }));
            assert!(
                matches!(scheduler, Some((CpuSource::Scheduler { variable: v, .. }, 2)) if *v == variable),
                "{:?}",
                cpus.considered()
            );
            assert!(cpus.considered().contains(&(CpuSource::Hardware, 64)));
        }
    }

    #[test]
    fn a_quota_narrower_than_the_allocation_wins_and_ties_name_the_scheduler() {
        let mut probe = FakeProbe::new("quota-vs-slurm");
        probe.env.insert("SLURM_CPUS_PER_TASK", "4");
        probe.cgroup_lines = Some("0::/job\n");
        probe.file("job/cpu.max", "300000 100000\n");
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 3);
        assert!(matches!(cpus.source(), CpuSource::CgroupQuota { .. }));
        probe.env.insert("SLURM_CPUS_PER_TASK", "3");
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 3);
        assert!(
            matches!(cpus.source(), CpuSource::Scheduler { .. }),
            "{:?}",
            cpus.source()
        );
    }

    #[test]
    fn unusable_scheduler_values_are_ignored_with_a_note() {
        let mut probe = FakeProbe::new("bad-scheduler");
        probe.env.insert("SLURM_CPUS_PER_TASK", "abc");
        probe.env.insert("NCPUS", "0");
        probe.affinity = Some(8);
        let cpus = detect(&probe);
        assert_eq!((cpus.count(), cpus.source()), (8, &CpuSource::AffinityMask));
        assert_eq!(
            cpus.ignored(),
            [
                "SLURM_CPUS_PER_TASK=\"abc\" ignored: not a positive integer",
                "NCPUS=\"0\" ignored: must be at least 1"
            ]
        );
    }

    #[test]
    fn a_narrow_affinity_mask_is_used() {
        let mut probe = FakeProbe::new("mask");
        probe.affinity = Some(1);
        let cpus = detect(&probe);
        assert_eq!((cpus.count(), cpus.source()), (1, &CpuSource::AffinityMask));
    }

    #[test]
    fn cgroup_v2_quota_is_rounded_up_and_the_tightest_ancestor_wins() {
        let mut probe = FakeProbe::new("v2");
        probe.cgroup_lines = Some("0::/kubepods/pod1/container\n");
        probe.file("cpu.max", "max 100000\n");
        probe.file("kubepods/cpu.max", "800000 100000\n");
        probe.file("kubepods/pod1/container/cpu.max", "250000 100000\n");
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 3);
        assert_eq!(
            cpus.source(),
            &CpuSource::CgroupQuota {
                version: 2,
                quota_us: 250_000,
                period_us: 100_000
            }
        );
        assert_eq!(
            cpus.source().to_string(),
            "the cgroup v2 CPU quota (250000 us per 100000 us, rounded up)"
        );
    }

    #[test]
    fn cgroup_v2_without_limit_falls_through_to_the_mask() {
        let mut probe = FakeProbe::new("v2max");
        probe.cgroup_lines = Some("0::/user.slice\n");
        probe.file("user.slice/cpu.max", "max 100000\n");
        probe.affinity = Some(4);
        assert_eq!(detect(&probe).source(), &CpuSource::AffinityMask);
    }

    #[test]
    fn cgroup_v1_quota_is_read_and_minus_one_means_unlimited() {
        let mut probe = FakeProbe::new("v1");
        probe.cgroup_lines = Some("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
        probe.file("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        probe.file("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        probe.file("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
        probe.file("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
        let cpus = detect(&probe);
        assert_eq!(cpus.count(), 2);
        assert!(matches!(
            cpus.source(),
            CpuSource::CgroupQuota { version: 1, .. }
        ));
    }

    #[test]
    fn a_quota_larger_than_the_mask_does_not_win() {
        let mut probe = FakeProbe::new("quota-vs-mask");
        probe.cgroup_lines = Some("0::/\n");
        probe.file("cpu.max", "400000 100000\n");
        probe.affinity = Some(2);
        assert_eq!(detect(&probe).count(), 2);
        assert_eq!(detect(&probe).source(), &CpuSource::AffinityMask);
    }

    #[test]
    fn the_real_system_gives_at_least_one_cpu() {
        let cpus = available();
        assert!(cpus.count() >= 1 && cpus.hardware() >= 1);
    }
}
