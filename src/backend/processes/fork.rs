//! The child side of a fork: how a worker process starts, what it may
//! touch, and how it ends.
//!
//! `fork` copies the calling thread only. Locks held by *other* threads at
//! that moment stay locked forever in the child; the module docs of the
//! process backend list the hazards and what is done about each. This file
//! holds the mechanics: the [`Forker`] (with the preconditions of a fork as
//! a `# Safety` contract), [`enter_child`], [`run_child`].

use super::os;
use crate::error::Error;
use crate::job::{self, unwind};
use crate::sync::LockUnpoisoned;
use crate::sys;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Serializes this crate's forks, so no child inherits another call's
/// half-made channel.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// How long a fork waits for another thread to let go of stdout or stderr
/// before it forks without them.
const STDIO_WAIT: Duration = Duration::from_millis(100);

/// What a forked child runs: never returns (it ends in `_exit`).
pub(super) type ChildBody<'a> = Box<dyn FnOnce() -> Infallible + 'a>;

/// Children's bodies with their borrows' lifetime erased, so the forker
/// thread can hold them. See [`Forker::fork_many`] for why that is sound.
struct Bodies(Vec<ChildBody<'static>>);

// SAFETY: the forker runs a body only in a forked child, which is a copy of
// the whole address space with that one thread, so the borrowed data is
// there, unshared. In the parent the bodies are dropped while their owner
// waits for the forker's answer (so the borrows are alive and not in use),
// or taken back by their owner.
unsafe impl Send for Bodies {}

/// Bodies waiting for the forker, taken by whichever side comes first: the
/// forker (once it holds the stdio locks) or their owner (after
/// [`STDIO_WAIT`]).
type Handoff = Arc<Mutex<Option<Bodies>>>;

/// What the forker thread is asked to do.
struct Request {
    bodies: Handoff,
    answer: mpsc::Sender<Vec<Result<os::Pid, Error>>>,
}

/// Forks the worker processes of one backend (its calls, streams and
/// sessions) while holding stdout and stderr: on the calling thread when
/// it is the process's only thread, else from a thread of its own.
///
/// Holding the stdio locks at the fork means no other thread holds them
/// (a lock held by another thread stays held for ever in the child, where
/// that thread does not exist) and nothing buffered is copied into the
/// child to be printed twice; the child, whose one thread is the forker's
/// copy, lets go of them at once, so every thread of a worker can print.
/// A process with one thread needs no forker: nobody else can hold the
/// locks, so its thread takes them and forks (as fast as a plain fork).
/// Otherwise the forker thread, started at the first such fork, waits for
/// the locks so the caller never does: after [`STDIO_WAIT`] the caller
/// forks itself, without the locks, and keeps doing so until the forker
/// got them. The forker ends when the backend and its sessions are
/// dropped, after their workers: `PR_SET_PDEATHSIG`, which fires when the
/// *thread* that forked a child ends, then fires only when the process
/// does.
#[derive(Debug, Default)]
pub(crate) struct Forker {
    thread: Mutex<Option<ForkerThread>>,
    /// Set while the forker waits for stdio locks another thread holds.
    stuck: Arc<AtomicBool>,
}

#[derive(Debug)]
struct ForkerThread {
    requests: mpsc::Sender<Request>,
    handle: std::thread::JoinHandle<()>,
}

impl Forker {
    /// The forker's request queue, starting its thread if need be; `None`
    /// if the thread cannot start.
    fn requests(&self) -> Option<mpsc::Sender<Request>> {
        let mut thread = self.thread.lock_unpoisoned();
        if thread.is_none() {
            let (requests, inbox) = mpsc::channel::<Request>();
            let stuck = self.stuck.clone();
            let handle = std::thread::Builder::new()
                .name("parpool-fork".to_string())
                .spawn(move || {
                    for request in inbox {
                        fork_for(&request, &stuck);
                    }
                })
                .ok()?;
            *thread = Some(ForkerThread { requests, handle });
        }
        thread.as_ref().map(|thread| thread.requests.clone())
    }

    /// Forks one child per body (each never returns), in one request to
    /// the forker thread, and returns their pids.
    ///
    /// # Safety
    ///
    /// Each body runs in a copy of this process that has only the forking
    /// thread. It must:
    ///
    /// - end in `_exit` (through [`run_child`]), never return or unwind
    ///   out, so no destructor of the parent's state runs twice;
    /// - not wait for anything another thread of the parent would have done
    ///   (those threads do not exist in the child), nor take a lock another
    ///   thread may have held at the fork (this crate's own are safe: see
    ///   the process backend's module docs);
    /// - treat the parent's descriptors it does not own as the parent's:
    ///   close them ([`enter_child`]) and never read or write them;
    /// - not rely on thread-locals of the calling thread: it runs on a copy
    ///   of the forker thread.
    pub(super) unsafe fn fork_many(
        &self,
        bodies: Vec<ChildBody<'_>>,
    ) -> Vec<Result<os::Pid, Error>> {
        unwind::install_panic_hook();
        let _forking = FORK_LOCK.lock_unpoisoned();
        let count = bodies.len();
        if let Err(error) = sys::before_fork() {
            // No way for the children to notice the parent's death: fork
            // none, and say why for each.
            let error = os::os_error("pipe", error);
            return (0..count).map(|_| Err(error.clone())).collect();
        }
        // SAFETY: only the lifetime changes. The bodies outlive this call
        // only in a handoff that a stuck forker still holds, and this call
        // takes them out of it before returning, so the forker never
        // touches them.
        let bodies: Vec<ChildBody<'static>> = unsafe { std::mem::transmute(bodies) };
        if sys::single_threaded() {
            // No other thread exists to hold stdout or stderr (and none can
            // start: this is the only thread), so this one takes them at
            // once and forks itself, sparing the forker's round trip.
            // SAFETY: passed on from this function's contract.
            return unsafe { fork_holding(bodies, stdio_locks()) };
        }
        let requests = match self.stuck.load(Ordering::Acquire) {
            true => None,
            false => self.requests(),
        };
        let Some(requests) = requests else {
            // SAFETY: passed on from this function's contract.
            return unsafe { fork_here(bodies) };
        };
        let handoff: Handoff = Arc::new(Mutex::new(Some(Bodies(bodies))));
        let (answer, answers) = mpsc::channel();
        let request = Request {
            bodies: handoff.clone(),
            answer,
        };
        if requests.send(request).is_err() {
            let bodies = take(&handoff).expect("nobody took them");
            // SAFETY: passed on from this function's contract.
            return unsafe { fork_here(bodies.0) };
        }
        let lost = || {
            (0..count)
                .map(|_| Err(Error::backend("processes", "the forker thread died")))
                .collect()
        };
        match answers.recv_timeout(STDIO_WAIT) {
            Ok(pids) => pids,
            Err(_) => match take(&handoff) {
                // Another thread holds stdout or stderr: fork here, without
                // them. The forker stays blocked until they are let go of,
                // then finds the bodies gone and serves again.
                Some(bodies) => {
                    self.stuck.store(true, Ordering::Release);
                    // SAFETY: passed on from this function's contract.
                    unsafe { fork_here(bodies.0) }
                }
                // The forker got the locks just now and is forking.
                None => answers.recv().unwrap_or_else(|_| lost()),
            },
        }
    }
}

impl Drop for Forker {
    fn drop(&mut self) {
        // The backend and its sessions are gone, their workers reaped: the
        // forker ends with them, so none of them got its death signal. A
        // forker still stuck on stdio locks is left to end on its own.
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(ForkerThread { requests, handle }) = thread {
            drop(requests);
            if !self.stuck.load(Ordering::Acquire) {
                let _ = handle.join();
            }
        }
    }
}

fn take(handoff: &Mutex<Option<Bodies>>) -> Option<Bodies> {
    handoff.lock_unpoisoned().take()
}

/// The stdout and stderr locks of this thread, stdout flushed first (what
/// is buffered is printed once, here, not by every child).
fn stdio_locks() -> (std::io::StdoutLock<'static>, std::io::StderrLock<'static>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.flush();
    (stdout, std::io::stderr().lock())
}

/// Forks `bodies` on this thread, which holds the stdio `locks`; each
/// child, a copy of this thread, lets go of them at once, so every thread
/// of the child (a task's helper thread too) can print.
///
/// # Safety
///
/// As for [`Forker::fork_many`].
unsafe fn fork_holding(
    bodies: Vec<ChildBody<'_>>,
    locks: (std::io::StdoutLock<'static>, std::io::StderrLock<'static>),
) -> Vec<Result<os::Pid, Error>> {
    let mut locks = Some(locks);
    // SAFETY: passed on from this function's contract.
    let pids = unsafe { fork_each(bodies, || drop(locks.take())) };
    drop(locks);
    pids
}

/// Serves one request on the forker thread: takes the stdio locks, then
/// forks the bodies if their owner still waits (else the owner gave up and
/// forked without the forker, which was stuck until now).
fn fork_for(request: &Request, stuck: &AtomicBool) {
    // Wait here, not in the caller, for another thread to let go of them.
    let locks = stdio_locks();
    let Some(Bodies(bodies)) = take(&request.bodies) else {
        drop(locks);
        stuck.store(false, Ordering::Release);
        return;
    };
    // SAFETY: passed on from `Forker::fork_many`'s contract, kept by its
    // caller.
    let pids = unsafe { fork_holding(bodies, locks) };
    let _ = request.answer.send(pids);
}

/// Set in a worker forked without the stdio locks: another thread of the
/// parent may have held stdout at the fork, for ever in the worker, so the
/// worker's own machinery never touches it (its tasks may, at their risk).
static STDOUT_MAY_BE_HELD: AtomicBool = AtomicBool::new(false);

/// Flushes stdout, unless this worker was forked without the stdio locks
/// (then taking stdout's lock could wait for ever).
pub(super) fn flush_stdout() -> std::io::Result<()> {
    if STDOUT_MAY_BE_HELD.load(Ordering::Relaxed) {
        return Ok(());
    }
    std::io::stdout().flush()
}

/// Forks on the calling thread, without the stdio locks.
///
/// # Safety
///
/// As for [`Forker::fork_many`].
unsafe fn fork_here(bodies: Vec<ChildBody<'_>>) -> Vec<Result<os::Pid, Error>> {
    // SAFETY: passed on from this function's contract.
    unsafe { fork_each(bodies, || STDOUT_MAY_BE_HELD.store(true, Ordering::Relaxed)) }
}

/// Forks one child per body; each child runs `prepare`, then its body.
///
/// # Safety
///
/// As for [`Forker::fork_many`]; `prepare` too runs in the child.
unsafe fn fork_each(
    bodies: Vec<ChildBody<'_>>,
    mut prepare: impl FnMut(),
) -> Vec<Result<os::Pid, Error>> {
    let mut pids = Vec::with_capacity(bodies.len());
    for body in bodies {
        // SAFETY: fork has no memory-safety preconditions of its own; what
        // the child does is the caller's contract.
        let pid = unsafe { sys::fork() };
        if let Ok(None) = pid {
            prepare();
            body();
        }
        // In the parent: the owner waits for the answer (or forks here), so
        // the body's borrows are alive.
        drop(body);
        pids.push(match pid {
            Ok(pid) => Ok(pid.expect("the child never gets here")),
            Err(error) => Err(os::os_error("fork", error)),
        });
    }
    pids
}

/// Prepares a freshly forked worker: dies with the parent, ignores
/// `SIGPIPE` (a parent gone is an error on its socket), closes the
/// parent's descriptors it does not use, marks itself as a worker (so pools
/// used inside its tasks run serially and progress meters stay quiet).
pub(super) fn enter_child(parent_pid: os::Pid, close: &[RawFd]) {
    sys::die_with_parent(parent_pid);
    sys::ignore_sigpipe();
    for fd in close.iter().copied().chain(sys::parent_only::registered()) {
        // SAFETY: these descriptors are the parent's, copied by fork (a
        // worker's channels, a journal's file); this child never uses
        // them, and the parent's values that own them never run their
        // destructors here.
        unsafe { sys::close_inherited(fd) };
    }
    job::mark_worker_process();
}

/// Runs a worker's loop with panics caught, then ends the process.
///
/// The loop runs inside a rayon pool of one thread made in the child: a
/// task's `par_iter` (or a library's, such as faer's) then runs there. The
/// rayon global pool the child inherited has no threads (they were not
/// copied by `fork`), so a task that used it would wait for ever.
pub(super) fn run_child(body: impl FnOnce() -> std::io::Result<()>) -> Infallible {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| in_fresh_rayon_pool(body)));
    exit_child(outcome)
}

/// Runs `body` in a new rayon pool of one thread: this one, made its only
/// worker (no thread to start); or, where rayon refuses (this thread is
/// already a worker of a pool, as when the fork was made on a rayon
/// thread), on the one thread of a pool started here; or, if even that
/// fails, as it is.
fn in_fresh_rayon_pool(body: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    let body = AssertSend(body);
    let here = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build();
    if let Ok(pool) = here {
        // This thread is the pool's worker now: `install` runs the loop
        // right here, and a task's rayon calls go to this pool.
        return pool.install(move || body.into_inner()());
    }
    let started = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "parpool-task".to_string())
        .build();
    match started {
        Ok(pool) => pool.install(move || body.into_inner()()),
        Err(_) => body.into_inner()(),
    }
}

/// Moves the worker's loop onto the pool's thread.
struct AssertSend<F>(F);

// SAFETY: the worker process has no other thread that could touch what the
// loop borrows: `install` runs the loop on this thread, or blocks this
// thread until the loop is done on the pool's one thread.
unsafe impl<F> Send for AssertSend<F> {}

impl<F> AssertSend<F> {
    fn into_inner(self) -> F {
        self.0
    }
}

/// Ends a worker process: flushes stdout, then `_exit` with a code that
/// says how the worker's loop ended.
fn exit_child(outcome: std::thread::Result<std::io::Result<()>>) -> Infallible {
    let _ = flush_stdout();
    let code = match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 3, // the channel broke: the parent is gone or stopped us
        Err(_) => 70,    // a bug in this backend, not in a task
    };
    sys::exit_now(code)
}
