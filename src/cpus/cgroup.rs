//! The cgroup CPU quota of this process (v2 `cpu.max`, v1
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us`), read from its cgroup up to
//! the root of the hierarchy.

use super::CpuSource;
use std::path::{Path, PathBuf};

/// The tightest cgroup CPU quota on the way from this process's cgroup up
/// to the root, as a CPU count (rounded up) with its source.
pub(super) fn cgroup_quota(
    root: &Path,
    proc_self_cgroup: Option<&str>,
) -> Option<(usize, CpuSource)> {
    let mut tightest: Option<(usize, CpuSource)> = None;
    let mut consider = |quota_us: u64, period_us: u64, version: u8| {
        if quota_us == 0 || period_us == 0 {
            return;
        }
        let count = quota_us.div_ceil(period_us).max(1) as usize;
        if tightest.as_ref().is_none_or(|(best, _)| count < *best) {
            tightest = Some((
                count,
                CpuSource::CgroupQuota {
                    version,
                    quota_us,
                    period_us,
                },
            ));
        }
    };
    for line in proc_self_cgroup.unwrap_or("").lines() {
        // "hierarchy-id:controllers:path"; the path may itself hold ':'.
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            // cgroup v2: one unified hierarchy.
            for directory in ancestors(root, relative) {
                if let Some((quota, period)) = read_cpu_max(&directory.join("cpu.max")) {
                    consider(quota, period, 2);
                }
            }
        } else if controllers.split(',').any(|name| name == "cpu") {
            // cgroup v1: the cpu controller is mounted under one of these names.
            for mount in [controllers, "cpu,cpuacct", "cpuacct,cpu", "cpu"] {
                for directory in ancestors(&root.join(mount), relative) {
                    let quota = read_number(&directory.join("cpu.cfs_quota_us"));
                    let period = read_number(&directory.join("cpu.cfs_period_us"));
                    if let (Some(quota), Some(period)) = (quota, period) {
                        // -1 means "no limit".
                        if let (Ok(quota), Ok(period)) =
                            (u64::try_from(quota), u64::try_from(period))
                        {
                            consider(quota, period, 1);
                        }
                    }
                }
            }
        }
    }
    tightest
}

/// `base/relative`, then each parent directory up to and including `base`.
fn ancestors(base: &Path, relative: &str) -> Vec<PathBuf> {
    let mut directories = vec![base.to_path_buf()];
    let mut current = base.to_path_buf();
    for part in relative
        .split('/')
        .filter(|part| !part.is_empty() && *part != "..")
    {
        current.push(part);
        directories.push(current.clone());
    }
    directories
}

/// Reads cgroup v2 `cpu.max`: "max 100000" (no limit) or "200000 100000".
fn read_cpu_max(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let quota = fields.next()?.parse::<u64>().ok()?;
    let period = fields.next()?.parse::<u64>().ok()?;
    Some((quota, period))
}

fn read_number(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
