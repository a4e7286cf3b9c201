//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use parpool::{BackendKind, Pool};

/// Worker counts every contract test runs with.
pub const WORKER_COUNTS: [usize; 4] = [1, 2, 3, 8];

/// One pool per built-in backend and worker count in `WORKER_COUNTS`
/// (threads pools dedicated except where the count equals the shared
/// pool's), and the shared thread pool every default `Pool` runs on.
pub fn every_pool() -> Vec<Pool> {
    let mut pools = vec![Pool::builder().kind(BackendKind::Threads).build().unwrap()];
    for &kind in BackendKind::AVAILABLE {
        for workers in WORKER_COUNTS {
            pools.push(pool(kind, workers, None));
        }
    }
    pools
}

/// A pool of `kind` with `workers` workers and an optional chunk size.
pub fn pool(kind: BackendKind, workers: usize, chunk_size: Option<usize>) -> Pool {
    let mut builder = Pool::builder().kind(kind).workers(workers);
    if let Some(size) = chunk_size {
        builder = builder.chunk_size(size);
    }
    builder.build().expect("valid pool settings")
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Shared memory mappings of this process (the `s` in the permissions of
/// /proc/self/maps).
pub fn shared_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| {
        maps.lines()
            .filter(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|perms| perms.ends_with('s'))
            })
            .count()
    })
}

/// Threads parpool started in this process (thread pools, the forker),
/// by name: the test harness starts and ends threads of its own.
pub fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.starts_with("parpool-"))
            .count()
    })
}

/// Starts what parpool keeps for the life of the process, by design: the
/// shared thread pool (as rayon's global pool) and, off Linux's fast path,
/// the pipe whose end-of-file tells workers their parent died. Call it
/// before counting threads or descriptors.
pub fn start_what_lives_with_the_process() {
    let shared = Pool::builder().kind(BackendKind::Threads).build().unwrap();
    assert_eq!(shared.map(|x: u8| x, [0, 1, 2]).unwrap(), [0, 1, 2]);
    if BackendKind::AVAILABLE.contains(&BackendKind::Processes) {
        let forked = processes(1).build().unwrap();
        assert_eq!(forked.map(|x: u8| x, [0, 1, 2]).unwrap(), [0, 1, 2]);
        drop(forked);
        // The drop joins the forker thread, but the kernel may list an
        // ended thread in /proc/self/task a moment longer: count without it.
        let forkers = || {
            thread_names()
                .iter()
                .filter(|name| name.as_str() == "parpool-fork")
                .count()
        };
        assert_eq!(
            settles_to(0, forkers),
            0,
            "the forker thread ends with its pool"
        );
    }
}

/// Initializes MPI (a one-rank world), if the build has it, for a test
/// that counts resources with MPI pools among its cases: MPI keeps its
/// shared memory until the process ends. Not for tests whose workers
/// `exit`, which would run MPI's `atexit` handler in a forked child.
pub fn start_mpi_if_built() {
    if BackendKind::AVAILABLE.contains(&BackendKind::Mpi) {
        let before = pool_threads();
        let ranks = Pool::builder().kind(BackendKind::Mpi).build().unwrap();
        assert_eq!(ranks.map(|x: u8| x, [0, 1, 2]).unwrap(), [0, 1, 2]);
        drop(ranks);
        // Its threads exit soon after the drop; count without them.
        settles_to(before, pool_threads);
    }
}

/// Names of this process's threads, sorted: what a failed count prints.
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task").map_or(Vec::new(), |dir| {
        dir.filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect()
    });
    names.sort();
    names
}

/// Threads of this process.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count())
}

/// Child processes of this process (any state, zombies included).
pub fn children() -> usize {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .is_some_and(|parent| parent == me)
        })
        .count()
}

/// Waits up to five seconds for `measure()` to come back to `expected`
/// (threads and processes exit asynchronously), returning the last reading.
pub fn settles_to(expected: usize, measure: impl Fn() -> usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = measure();
        if now <= expected || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Counters in an anonymous shared mapping, so that tasks running in forked
/// worker processes can count too (a plain atomic would count in the
/// child's copy only). Without `fork` (Windows), plain memory.
pub struct SharedCounters {
    base: *mut std::sync::atomic::AtomicUsize,
    len: usize,
}

// SAFETY: the memory holds atomics only and lives as long as the value.
unsafe impl Sync for SharedCounters {}
// SAFETY: as above.
unsafe impl Send for SharedCounters {}

impl SharedCounters {
    pub fn new(len: usize) -> SharedCounters {
        SharedCounters {
            base: Self::allocate(Self::bytes(len)).cast(),
            len,
        }
    }

    fn bytes(len: usize) -> usize {
        len.max(1) * std::mem::size_of::<usize>()
    }

    #[cfg(unix)]
    fn allocate(bytes: usize) -> *mut u8 {
        // SAFETY: a fresh anonymous mapping; checked below. Zeroed memory is
        // a valid array of AtomicUsize.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap failed");
        base.cast()
    }

    #[cfg(not(unix))]
    fn allocate(bytes: usize) -> *mut u8 {
        let words = vec![0usize; bytes / std::mem::size_of::<usize>()];
        Box::into_raw(words.into_boxed_slice()).cast()
    }

    pub fn get(&self, index: usize) -> &std::sync::atomic::AtomicUsize {
        assert!(index < self.len);
        // SAFETY: index < len, inside the memory.
        unsafe { &*self.base.add(index) }
    }

    pub fn add(&self, index: usize) {
        self.get(index)
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn value(&self, index: usize) -> usize {
        self.get(index).load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SharedCounters {
    #[cfg(unix)]
    fn drop(&mut self) {
        // SAFETY: the mapping from `new`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), Self::bytes(self.len)) };
    }

    #[cfg(not(unix))]
    fn drop(&mut self) {
        let words = Self::bytes(self.len) / std::mem::size_of::<usize>();
        // SAFETY: the boxed slice from `allocate`, freed once.
        drop(unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.base.cast::<usize>(),
                words,
            ))
        });
    }
}

/// Re-runs the current test binary with only its test `scenario_host`,
/// which runs the scenario named by `PARPOOL_SCENARIO` in a fresh process
/// (the pattern of rayon's crash tests). Returns the command, to add
/// environment variables or spawn it.
pub fn scenario_command(name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "scenario_host",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("PARPOOL_SCENARIO", name);
    command
}

/// Runs `command` to the end, or kills it after `limit`: the output, or
/// `Err` saying it hung (so a hang fails a test instead of stalling CI).
/// Its stdout and stderr are read while it runs, so a chatty child never
/// blocks on a full pipe.
pub fn output_within(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> Result<std::process::Output, String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            return Err(format!(
                "still running after {limit:?}: killed. stderr:\n{stderr}"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// An error's message without the panic location:
/// `task 3 of 10 panicked at src/x.rs:4:9: boom` becomes
/// `task 3 of 10 panicked: boom` (locations depend on line numbers).
pub fn without_location(message: impl std::fmt::Display) -> String {
    let message = message.to_string();
    let Some(at) = message.find("panicked at ") else {
        return message;
    };
    let location_start = at + "panicked at ".len();
    match message[location_start..].find(": ") {
        Some(end) => format!(
            "{}panicked{}",
            &message[..at],
            &message[location_start + end..]
        ),
        None => message,
    }
}

/// Runs `case` alone (holding `one_at_a_time`, as tests that count this
/// process's resources must) and checks it left no descriptors, children
/// or shared mappings behind.
pub fn alone_without_leaks(one_at_a_time: &std::sync::Mutex<()>, case: impl FnOnce()) {
    let _alone = one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
    without_leaks(case);
}

/// [`alone_without_leaks`] for a caller that already holds the lock (and
/// may have started, before, what it wants counted as already there).
#[allow(dead_code)]
pub fn without_leaks(case: impl FnOnce()) {
    start_what_lives_with_the_process();
    let fds_before = open_fds();
    let children_before = children();
    let mappings_before = shared_mappings();
    let threads_before = pool_threads();
    case();
    // Threads of pools dropped by another test may still be exiting, so
    // the count may also go down.
    let threads_after = settles_to(threads_before, pool_threads);
    assert!(
        threads_after <= threads_before,
        "pool threads left running: {threads_after}, before {threads_before}"
    );
    assert_eq!(
        shared_mappings(),
        mappings_before,
        "shared mappings left mapped"
    );
    assert_eq!(open_fds(), fds_before, "file descriptors leaked");
    assert_eq!(children(), children_before, "child processes left behind");
}

/// A builder for a process pool of `workers` workers.
pub fn processes(workers: usize) -> parpool::PoolBuilder {
    Pool::builder()
        .kind(BackendKind::Processes)
        .workers(workers)
}
