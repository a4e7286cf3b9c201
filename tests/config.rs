//! Configuration errors: bad builder values and bad environment variables
//! are clear errors naming the value and what is accepted.
//!
//! The tests change this process's environment, so they hold one lock.

use parpool::{BackendKind, Pool};
use std::sync::Mutex;

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Runs `body` with the given variables set (or removed, for `None`).
fn with_env(vars: &[(&str, Option<&str>)], body: impl FnOnce()) {
    let _lock = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let saved: Vec<_> = vars
        .iter()
        .map(|(name, _)| (*name, std::env::var(name).ok()))
        .collect();
    let set = |name: &str, value: Option<&str>| match value {
        // SAFETY: every test of this binary that touches or reads the
        // environment holds ENV_LOCK, so no other thread reads it meanwhile.
        Some(value) => unsafe { std::env::set_var(name, value) },
        // SAFETY: as above.
        None => unsafe { std::env::remove_var(name) },
    };
    for (name, value) in vars {
        set(name, *value);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    for (name, value) in saved {
        set(name, value.as_deref());
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn zero_workers_and_zero_chunk_size_are_rejected() {
    let error = Pool::builder().workers(0).build().unwrap_err();
    assert!(error.is_invalid_config());
    assert_eq!(
        error.to_string(),
        "invalid workers = \"0\": a pool needs at least 1 worker"
    );
    let error = Pool::builder().chunk_size(0).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid chunk_size = \"0\": a chunk holds at least 1 item"
    );
}

#[test]
fn an_unknown_backend_variable_names_the_value_and_the_choices() {
    with_env(
        &[("PARPOOL_BACKEND", Some("gpu")), ("PARPOOL_WORKERS", None)],
        || {
            let error = Pool::from_env().unwrap_err();
            assert!(error.is_invalid_config());
            let message = error.to_string();
            assert!(
                message.starts_with(
                    "invalid PARPOOL_BACKEND = \"gpu\": expected one of: serial, threads"
                ),
                "{message}"
            );
            let panic = std::panic::catch_unwind(Pool::new).unwrap_err();
            let text = panic.downcast_ref::<String>().unwrap();
            assert!(
                text.starts_with("parpool: invalid PARPOOL_BACKEND = \"gpu\""),
                "{text}"
            );
        },
    );
}

#[cfg(not(feature = "mpi"))]
#[test]
fn a_backend_not_compiled_in_says_so() {
    with_env(
        &[("PARPOOL_BACKEND", Some("mpi")), ("PARPOOL_WORKERS", None)],
        || {
            let message = Pool::from_env().unwrap_err().to_string();
            assert!(message.contains("not in this build"), "{message}");
            // The same in code: the kind exists in every build.
            let error = Pool::builder().kind(BackendKind::Mpi).build().unwrap_err();
            assert!(error.is_invalid_config(), "{error}");
            assert!(error.to_string().contains("--features mpi"), "{error}");
            assert!(!BackendKind::AVAILABLE.contains(&BackendKind::Mpi));
        },
    );
}

/// Worker processes run on every Unix; where there is no `fork`, asking
/// for them, in code or in the environment, is an error naming the
/// platform, and nothing panics.
#[test]
fn processes_run_where_there_is_fork_and_are_a_clear_error_elsewhere() {
    let built = Pool::builder()
        .kind(BackendKind::Processes)
        .workers(2)
        .build();
    let direct = parpool::backend::ProcessesBackend::new(2);
    let available = BackendKind::AVAILABLE.contains(&BackendKind::Processes);
    assert_eq!(available, cfg!(unix));
    if cfg!(unix) {
        assert_eq!(built.unwrap().map(|x: u8| x + 1, [1, 2]).unwrap(), [2, 3]);
        assert!(direct.is_ok());
        return;
    }
    for error in [built.unwrap_err(), direct.unwrap_err()] {
        assert!(error.is_invalid_config(), "{error}");
        let message = error.to_string();
        assert!(message.contains("needs fork"), "{message}");
        assert!(message.contains(std::env::consts::OS), "{message}");
    }
    with_env(
        &[
            ("PARPOOL_BACKEND", Some("processes")),
            ("PARPOOL_WORKERS", None),
        ],
        || {
            let message = Pool::from_env().unwrap_err().to_string();
            assert!(message.contains(std::env::consts::OS), "{message}");
        },
    );
}

#[test]
fn a_non_number_workers_variable_is_rejected() {
    for bad in ["many", "-2", "0", ""] {
        with_env(
            &[("PARPOOL_BACKEND", None), ("PARPOOL_WORKERS", Some(bad))],
            || {
                let error = Pool::from_env().unwrap_err();
                assert!(error.is_invalid_config(), "{bad}");
                assert!(
                    error
                        .to_string()
                        .starts_with(&format!("invalid PARPOOL_WORKERS = {bad:?}")),
                    "{error}"
                );
            },
        );
    }
}

#[test]
fn the_environment_picks_backend_and_workers() {
    with_env(
        &[
            ("PARPOOL_BACKEND", Some("Serial")),
            ("PARPOOL_WORKERS", Some("3")),
        ],
        || {
            let pool = Pool::new();
            assert_eq!(pool.kind(), BackendKind::Serial);
        },
    );
    with_env(
        &[
            ("PARPOOL_BACKEND", Some("threads")),
            ("PARPOOL_WORKERS", Some("3")),
        ],
        || {
            let pool = Pool::new();
            assert_eq!((pool.kind(), pool.workers()), (BackendKind::Threads, 3));
        },
    );
    with_env(
        &[("PARPOOL_BACKEND", None), ("PARPOOL_WORKERS", None)],
        || {
            let pool = Pool::new();
            assert_eq!(pool.kind(), BackendKind::Threads);
            assert_eq!(pool.workers(), parpool::cpus::available().count());
        },
    );
}

#[test]
fn code_beats_the_environment() {
    with_env(
        &[
            ("PARPOOL_BACKEND", Some("nonsense")),
            ("PARPOOL_WORKERS", Some("nonsense")),
        ],
        || {
            let pool = Pool::builder()
                .kind(BackendKind::Threads)
                .workers(2)
                .build()
                .unwrap();
            assert_eq!((pool.kind(), pool.workers()), (BackendKind::Threads, 2));
        },
    );
}

#[test]
fn settings_a_backend_cannot_honour_are_rejected_by_name() {
    use std::time::Duration;
    with_env(
        &[("PARPOOL_BACKEND", None), ("PARPOOL_WORKERS", None)],
        || {
            let in_process = [BackendKind::Serial, BackendKind::Threads];
            for kind in in_process {
                let rejected = [
                    (
                        "retries",
                        Pool::builder().kind(kind).retries(3).build().err(),
                    ),
                    (
                        "timeout",
                        Pool::builder()
                            .kind(kind)
                            .timeout(Duration::from_secs(1))
                            .build()
                            .err(),
                    ),
                    (
                        "max_tasks_per_worker",
                        Pool::builder()
                            .kind(kind)
                            .max_tasks_per_worker(2)
                            .build()
                            .err(),
                    ),
                    (
                        "retries",
                        Pool::builder().kind(kind).retries(1).build_local().err(),
                    ),
                ];
                for (setting, error) in rejected {
                    let error = error.unwrap_or_else(|| panic!("{kind} accepted {setting}"));
                    assert!(error.is_invalid_config(), "{error}");
                    assert!(
                        error
                            .to_string()
                            .starts_with(&format!("invalid {setting} = ")),
                        "{error}"
                    );
                }
                // 0 retries is what these backends do anyway.
                assert!(Pool::builder().kind(kind).retries(0).build().is_ok());
            }
            // Dedicated threads are a setting of the threads backend only.
            let error = Pool::builder()
                .kind(BackendKind::Serial)
                .dedicated_threads(true)
                .build()
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("invalid dedicated_threads = "),
                "{error}"
            );
            assert!(
                Pool::builder()
                    .kind(BackendKind::Threads)
                    .dedicated_threads(true)
                    .build()
                    .is_ok()
            );
            assert!(Pool::local().kind() == BackendKind::Threads);
            if cfg!(unix) {
                let processes = Pool::builder()
                    .kind(BackendKind::Processes)
                    .workers(2)
                    .retries(2)
                    .timeout(Duration::from_secs(5))
                    .max_tasks_per_worker(3)
                    .build()
                    .unwrap();
                assert_eq!(processes.map(|x: u8| x * 2, [1, 2]).unwrap(), [2, 4]);
                let error = Pool::builder()
                    .kind(BackendKind::Processes)
                    .dedicated_threads(true)
                    .build()
                    .unwrap_err();
                assert!(error.is_invalid_config(), "{error}");
            }
        },
    );
}

#[test]
fn default_pools_run_on_the_shared_pool_and_other_sizes_do_not() {
    with_env(
        &[("PARPOOL_BACKEND", None), ("PARPOOL_WORKERS", None)],
        || {
            let shared = Pool::new().workers();
            assert_eq!(Pool::local().workers(), shared);
            assert_eq!(Pool::default().workers(), shared);
            let other = Pool::builder().workers(shared + 3).build().unwrap();
            assert_eq!(other.workers(), shared + 3);
            assert_eq!(other.map(|x: u8| x, [7]).unwrap(), [7]);
        },
    );
}
