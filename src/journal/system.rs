//! What the journal asks of the system: the file lock, the directory and
//! the launcher's rank.

use super::LOCK_PATIENCE;
use crate::error::Error;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// Locks `file` for this process, or says why not.
///
/// The lock belongs to the open file, which a process forked at that
/// moment shares until it closes its copy (a worker does at once, a
/// program spawned by `Command` at its `exec`): a lock held for a few
/// milliseconds is waited for, up to [`LOCK_PATIENCE`], before it counts
/// as another process's.
pub(super) fn lock(file: &File, path: &Path) -> Result<(), Error> {
    let started = Instant::now();
    let mut outcome = file.try_lock();
    while matches!(outcome, Err(std::fs::TryLockError::WouldBlock))
        && started.elapsed() < LOCK_PATIENCE
    {
        std::thread::sleep(Duration::from_millis(5));
        outcome = file.try_lock();
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::journal(
            path,
            "is in use by another process (it holds the journal's lock); \
             one process writes a journal at a time",
        )),
        Err(std::fs::TryLockError::Error(error)) => Err(Error::journal(
            path,
            format!(
                "cannot be locked ({error}): this filesystem does not support file locks \
                 (Lustre without the `flock` mount option, NFS mounted with `nolock`); a journal \
                 needs them to keep two runs from writing it at once: put it on a local disk or a \
                 filesystem that locks"
            ),
        )),
    }
}

/// `Err` unless the directory of `path` exists and is a directory.
pub(super) fn check_directory(path: &Path) -> Result<(), Error> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(Error::journal(
            path,
            format!(
                "cannot be created: {} is not a directory",
                directory.display()
            ),
        )),
        Err(error) => Err(Error::journal_io(path, "create", error)),
    }
}

/// Makes a rename in the directory of `path` durable.
pub(super) fn sync_directory(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// This process's rank by its launcher's variables (Open MPI's `mpiexec`,
/// MPICH's Hydra and other PMI launchers, Slurm's `srun`), if launched by
/// one.
pub(super) fn launcher_rank() -> Option<usize> {
    crate::env::LAUNCHER_RANK
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}
