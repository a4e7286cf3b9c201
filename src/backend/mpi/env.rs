//! MPI's lifetime in this process, apart from the backend: initialising
//! it (or adopting the MPI the program initialised), finalising it at exit
//! if parpool initialised it, the lock every MPI call of the backend takes
//! ([`enter`]), the progress thread of streams across nodes, and the check
//! that a launcher's tasks joined MPI's world.

use crate::env::LAUNCHER_TASKS as LAUNCHER_VARIABLES;
use crate::error::Error;
use crate::sync::LockUnpoisoned;
use mpi::Threading;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::{Arc, Mutex, MutexGuard};

/// MPI as this process has it.
pub(super) struct Started {
    /// Dropping it calls MPI_Finalize: `Some` only if parpool initialised
    /// MPI. An MPI the program initialised itself is never finalised here.
    universe: Option<mpi::environment::Universe>,
    /// The thread level MPI provides.
    level: Threading,
}

/// MPI, initialised (or adopted) by the first MPI pool and, if parpool
/// initialised it, finalised at exit. The lock also serialises every MPI
/// call this backend makes.
pub(super) static MPI: Mutex<Option<Started>> = Mutex::new(None);

/// Finalises MPI at normal process exit.
extern "C" fn finalize_at_exit() {
    let mut started = MPI.lock_unpoisoned();
    drop(started.take().and_then(|started| started.universe));
}

/// The right to make MPI calls: the lock, taken on a thread MPI allows
/// calls from.
pub(super) type Entered = MutexGuard<'static, Option<Started>>;

/// Takes the MPI lock, checking that this thread may call MPI.
pub(super) fn enter() -> Result<Entered, Error> {
    let started = MPI.lock_unpoisoned();
    let Some(level) = started.as_ref().map(|started| started.level) else {
        return Err(Error::backend("mpi", "MPI was finalized"));
    };
    if mpi::environment::is_finalized() {
        // The program finalised the MPI it had initialised itself.
        return Err(Error::backend(
            "mpi",
            "MPI was finalized by the program; make and use MPI pools before finalizing MPI",
        ));
    }
    if level == Threading::Funneled && !is_thread_main() {
        return Err(Error::backend(
            "mpi",
            "this MPI library provides only MPI_THREAD_FUNNELED: call MPI pools from the \
             thread that created the first one",
        ));
    }
    Ok(started)
}

/// True on the thread that initialised MPI.
fn is_thread_main() -> bool {
    let mut flag: std::os::raw::c_int = 0;
    // SAFETY: MPI is initialised (the caller holds `MPI` with a started
    // universe); MPI_Is_thread_main may be called from any thread.
    unsafe { mpi::ffi::MPI_Is_thread_main(&mut flag) };
    flag != 0
}

/// How often [`Progress`] enters MPI.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// A thread that enters MPI every [`PROGRESS_INTERVAL`] while a stream is
/// open across nodes, so that other ranks' one-sided claims on a counter
/// this rank hosts, and their large sends to it, complete even while this
/// rank's caller is busy between results. Not started where MPI allows
/// calls from one thread only (FUNNELED).
pub(super) struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A communicator handle that may cross threads; see `stream.rs`'s `Comm`.
struct RawComm(mpi::ffi::MPI_Comm);

// SAFETY: an opaque handle, only passed to MPI under the `MPI` lock.
unsafe impl Send for RawComm {}

impl Progress {
    /// Starts the thread, probing `comm` (which must outlive the returned
    /// value). `entered` is the caller's hold on the lock, which the thread
    /// waits for.
    pub(super) fn start(entered: &Entered, comm: mpi::ffi::MPI_Comm) -> Option<Progress> {
        if entered.as_ref()?.level == Threading::Funneled {
            return None;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let raw = RawComm(comm);
        let thread = std::thread::Builder::new()
            .name("parpool-mpi-progress".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let raw = raw;
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        std::thread::sleep(PROGRESS_INTERVAL);
                        let Ok(started) = MPI.try_lock() else {
                            continue;
                        };
                        if started.is_none() {
                            return;
                        }
                        let mut flag = 0;
                        // SAFETY: MPI is initialised, the lock is held, and
                        // the communicator lives until this thread is
                        // joined. Iprobe only looks; it receives nothing.
                        unsafe {
                            mpi::ffi::MPI_Iprobe(
                                mpi::ffi::RSMPI_ANY_SOURCE,
                                mpi::ffi::RSMPI_ANY_TAG,
                                raw.0,
                                &mut flag,
                                mpi::ffi::RSMPI_STATUS_IGNORE,
                            );
                        }
                    }
                }
            })
            .ok()?;
        Some(Progress {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread level the MPI backend needs, as its error messages name it.
pub(super) const NEEDED_LEVEL: &str = "MPI_THREAD_FUNNELED";

/// Initialises MPI if no MPI pool did yet, or adopts the MPI the program
/// initialised itself (at [`NEEDED_LEVEL`] or above); then checks that
/// the launcher and MPI agree on the number of tasks.
pub(super) fn start_mpi() -> Result<(), Error> {
    let mut started = MPI.lock_unpoisoned();
    if started.is_some() {
        return Ok(());
    }
    if mpi::environment::is_finalized() {
        return Err(Error::backend("mpi", "MPI was already finalized"));
    }
    if mpi::environment::is_initialized() {
        // The program (rsmpi's `initialize_with_threading`, or C or Fortran
        // code linked in) started MPI: use it, never finalise it.
        let level = mpi::environment::threading_support();
        if level == Threading::Single {
            return Err(Error::backend(
                "mpi",
                format!(
                    "the program initialized MPI with MPI_THREAD_SINGLE; parpool's MPI backend \
                     needs at least {NEEDED_LEVEL} (its worker threads never call MPI): \
                     initialize with `mpi::initialize_with_threading(Threading::Funneled)` \
                     (`MPI_Init_thread` in C or Fortran), or let parpool initialize MPI"
                ),
            ));
        }
        *started = Some(Started {
            universe: None,
            level,
        });
    } else {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::backend("mpi", "MPI could not be initialized"))?;
        *started = Some(Started {
            universe: Some(universe),
            level,
        });
        // SAFETY: registering a plain extern "C" function with atexit has
        // no preconditions; it runs once, at normal exit.
        unsafe { libc::atexit(finalize_at_exit) };
        if level == Threading::Single {
            return Err(Error::backend(
                "mpi",
                format!(
                    "this MPI library provides only MPI_THREAD_SINGLE; parpool's MPI backend \
                     needs at least {NEEDED_LEVEL} (its worker threads never call MPI)"
                ),
            ));
        }
    }
    let world = SimpleCommunicator::world().size() as usize;
    launched_as_started(world, |name| std::env::var(name).ok())
}

/// `Err` if a launcher started several tasks but MPI's world has one rank:
/// the binary's MPI did not join the launcher's job (`srun` without
/// `--mpi`, another MPI's `mpiexec`), and every task would run the whole
/// job alone.
pub(super) fn launched_as_started(
    world: usize,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), Error> {
    if world != 1 {
        return Ok(());
    }
    for &variable in LAUNCHER_VARIABLES {
        let Some(text) = env(variable) else {
            continue;
        };
        let Ok(tasks) = text.trim().parse::<usize>() else {
            continue;
        };
        if tasks <= 1 {
            return Ok(());
        }
        let library = mpi::environment::library_version()
            .ok()
            .and_then(|version| {
                let first = version.lines().next()?;
                Some(first.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        return Err(Error::invalid_config(
            variable,
            text.trim(),
            format!(
                "the launcher started {tasks} tasks, but MPI's world has 1 rank: the MPI this \
                 binary is linked with ({library}) did not join the launcher's job, so every \
                 task would run the whole job alone. Under Slurm start it with \
                 `srun --mpi=pmi2` (MPICH) or `srun --mpi=pmix` (Open MPI; `srun --mpi=list` \
                 shows what your Slurm offers); otherwise use the `mpiexec` of the MPI it was \
                 built with (on Debian and Ubuntu `mpiexec.mpich` or `mpiexec.openmpi`)"
            ),
        ));
    }
    Ok(())
}
