//! The `parpool` Python module: the lesson's Monte-Carlo pi and matrix
//! inversion, computed in parallel by the parpool Rust crate with the GIL
//! released, and parpool's CPU detection.
//!
//! Every long call runs on a helper thread while the calling thread waits
//! without the GIL, taking it back every 50 ms to let Python handle signals:
//! Ctrl-C cancels the call through a `CancelToken` and raises
//! `KeyboardInterrupt` once the workers have stopped.

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use parpool_core::cpus::{self, CpuSource};
use parpool_core::{BackendKind, CancelToken, Pool};
use parpool_workloads::invert::{self, Matrix};
use parpool_workloads::pi;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// How often a waiting call looks for a signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// How many CPUs parpool uses here, and which rule decided.
///
/// `count` is what a pool with no `workers` argument starts. `source` is
/// the rule, named as the Rust crate names it: "EnvOverride"
/// (PARPOOL_WORKERS), "Scheduler" (Slurm's SLURM_CPUS_PER_TASK, PBS's
/// NCPUS), "AffinityMask" (taskset, a launcher's CPU binding),
/// "CgroupQuota" (a container's CPU limit) or "Hardware" (nothing limits
/// the process). `description` says the same in words; `hardware` is the
/// machine's online CPU count.
#[pyclass(frozen, module = "parpool", name = "Cpus")]
struct PyCpus {
    #[pyo3(get)]
    count: usize,
    #[pyo3(get)]
    source: &'static str,
    #[pyo3(get)]
    description: String,
    #[pyo3(get)]
    hardware: usize,
}

#[pymethods]
impl PyCpus {
    fn __repr__(&self) -> String {
        format!(
            "Cpus(count={}, source='{}', hardware={})",
            self.count, self.source, self.hardware
        )
    }
}

/// The name of a CPU source, as the Rust enum names it.
fn source_name(source: &CpuSource) -> &'static str {
    match source {
        CpuSource::EnvOverride { .. } => "EnvOverride",
        CpuSource::Scheduler { .. } => "Scheduler",
        CpuSource::AffinityMask => "AffinityMask",
        CpuSource::CgroupQuota { .. } => "CgroupQuota",
        _ => "Hardware",
    }
}

/// cpus() -> Cpus
///
/// How many CPUs this process may use, and which rule decided: the
/// lesson's "how many cores do I really have?" answered the way parpool
/// answers it (PARPOOL_WORKERS, then the batch scheduler, then the CPU
/// affinity mask and cgroup quota, then the machine).
///
/// >>> import parpool
/// >>> c = parpool.cpus()
/// >>> c.count >= 1
/// True
#[pyfunction(name = "cpus")]
fn cpus_py() -> PyCpus {
    let found = cpus::available();
    PyCpus {
        count: found.count(),
        source: source_name(found.source()),
        description: found.source().to_string(),
        hardware: found.hardware(),
    }
}

/// A pool for `backend` and `workers`, checked.
fn build_pool(backend: &str, workers: Option<i64>) -> PyResult<Pool> {
    if backend.trim().eq_ignore_ascii_case("mpi") {
        return Err(PyValueError::new_err(
            "backend 'mpi' is not available from Python: use mpi4py for the ranks and \
             parpool's threads inside each rank (see examples/pi_mpi4py.py)",
        ));
    }
    let kind: BackendKind = backend
        .parse()
        .map_err(|error: parpool_core::Error| PyValueError::new_err(error.to_string()))?;
    let mut builder = Pool::builder().kind(kind);
    if let Some(workers) = workers {
        if workers < 1 {
            return Err(PyValueError::new_err(format!(
                "workers must be at least 1, got {workers}"
            )));
        }
        builder = builder.workers(workers as usize);
    }
    builder
        .build()
        .map_err(|error| PyValueError::new_err(error.to_string()))
}

/// Runs `work` with a cancel token on a helper thread, without the GIL,
/// looking for signals every [`SIGNAL_POLL`]: on Ctrl-C (or any signal
/// handler that raises) the token is cancelled, the work is waited for,
/// and the handler's exception is raised.
fn run_interruptible<R: Send>(
    py: Python<'_>,
    work: impl FnOnce(&CancelToken) -> R + Send,
) -> PyResult<R> {
    let token = CancelToken::new();
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        // Waited on without the GIL, which needs a `Sync` handle.
        let receiver = Mutex::new(receiver);
        let token_for_work = token.clone();
        scope.spawn(move || {
            let result = work(&token_for_work);
            let _ = sender.send(result);
        });
        loop {
            let received = py.detach(|| lock(&receiver).recv_timeout(SIGNAL_POLL));
            match received {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        token.cancel();
                        // The workers stop before their next item.
                        let _ = py.detach(|| lock(&receiver).recv());
                        return Err(interrupt);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "the computation thread ended without a result",
                    ));
                }
            }
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An integer argument of at least `least`, or a ValueError naming it.
fn at_least(name: &str, value: i64, least: u64) -> PyResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|&value| value >= least)
        .ok_or_else(|| {
            PyValueError::new_err(format!("{name} must be at least {least}, got {value}"))
        })
}

/// pi(tasks, samples, *, workers=None, backend="threads", seed=2026) -> PiResult
///
/// Estimates pi by throwing `samples` darts in each of `tasks` tasks, in
/// parallel. Task t draws from its own random stream (seed, t), so the
/// result depends only on (tasks, samples, seed): the same on every
/// backend ("serial", "threads", "processes") and worker count, and the
/// same numbers `cargo run --example pi` prints.
///
/// `tasks` is a number (tasks 0 to tasks - 1) or the task numbers
/// themselves, such as one MPI rank's share, `range(rank, tasks, size)`:
/// the shares' counts add up to the whole run's, on any number of ranks.
///
/// Returns a named tuple (estimate, inside, total). The GIL is released
/// while Rust computes; Ctrl-C stops the call within about a second with
/// KeyboardInterrupt.
///
/// >>> import parpool
/// >>> r = parpool.pi(4, 100_000, workers=2)
/// >>> r.total
/// 400000
/// >>> parpool.pi(range(0, 4, 2), 100_000).inside + parpool.pi(range(1, 4, 2), 100_000).inside == r.inside
/// True
#[pyfunction]
#[pyo3(name = "pi", signature = (tasks, samples, *, workers=None, backend="threads", seed=2026))]
fn pi_py(
    py: Python<'_>,
    tasks: &Bound<'_, PyAny>,
    samples: i64,
    workers: Option<i64>,
    backend: &str,
    seed: i64,
) -> PyResult<Py<PyAny>> {
    let tasks: Vec<u64> = match tasks.extract::<i64>() {
        Ok(count) => (0..at_least("tasks", count, 1)?).collect(),
        Err(_) => tasks
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err("tasks must be a number or an iterable of task numbers")
            })?
            .map(|task| at_least("a task number", task?.extract::<i64>()?, 0))
            .collect::<PyResult<_>>()?,
    };
    let samples = at_least("samples", samples, 1)?;
    let seed = at_least("seed", seed, 0)?;
    if (tasks.len() as u64).checked_mul(samples).is_none() {
        return Err(PyValueError::new_err("tasks * samples must fit in 64 bits"));
    }
    let pool = build_pool(backend, workers)?;
    let estimate = run_interruptible(py, |token| {
        pi::estimate_tasks(&pool.with_cancel(token), tasks, samples, seed)
    })?
    .map_err(|error| PyValueError::new_err(error.to_string()))?;
    let result_type = py.import("parpool")?.getattr("PiResult")?;
    Ok(result_type
        .call1((estimate.value(), estimate.inside, estimate.darts))?
        .unbind())
}

/// invert(a, *, workers=None) -> numpy.ndarray
///
/// The inverse of the square matrix `a`, computed by parpool's blocked
/// Gauss-Jordan elimination with partial pivoting on `workers` threads
/// (default: parpool.cpus().count). `a` is anything that converts to a 2-D
/// float64 array; the result is a new C-ordered float64 array.
///
/// Raises ValueError for a non-square, empty or non-finite input and
/// numpy.linalg.LinAlgError for a singular one. The GIL is released while
/// Rust computes.
///
/// >>> import numpy, parpool
/// >>> x = parpool.invert([[2.0, 1.0], [1.0, 3.0]])
/// >>> numpy.allclose(x @ [[2.0, 1.0], [1.0, 3.0]], numpy.eye(2))
/// True
#[pyfunction]
#[pyo3(name = "invert", signature = (a, *, workers=None))]
fn invert_py<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    workers: Option<i64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let numpy = py.import("numpy")?;
    let converted = numpy
        .call_method1("asarray", (a, numpy.getattr("float64")?))
        .map_err(|error| {
            PyTypeError::new_err(format!(
                "invert needs something that converts to a 2-D float64 array: {error}"
            ))
        })?;
    let ndim: usize = converted.getattr("ndim")?.extract()?;
    if ndim != 2 {
        return Err(PyValueError::new_err(format!(
            "invert needs a 2-D array, got {ndim} dimension(s)"
        )));
    }
    let array: PyReadonlyArray2<f64> = converted.extract()?;
    let (rows, cols) = (array.shape()[0], array.shape()[1]);
    if rows != cols {
        return Err(PyValueError::new_err(format!(
            "invert needs a square matrix, got shape ({rows}, {cols})"
        )));
    }
    if rows == 0 {
        return Err(PyValueError::new_err("invert needs a non-empty matrix"));
    }
    let view = array.as_array();
    if let Some(((row, col), value)) = view.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "the matrix has a non-finite entry {value} at ({row}, {col})"
        )));
    }
    let matrix = Matrix::from_fn(rows, |row, col| view[[row, col]]);
    drop(array);
    let pool = build_pool("threads", workers)?;
    let inverse = run_interruptible(py, |token| {
        invert::invert(&pool.with_cancel(token), &matrix)
    })?
    .map_err(|error| {
        if error.is_invalid_input() {
            let linalg = py
                .import("numpy.linalg")
                .and_then(|module| module.getattr("LinAlgError"));
            match linalg {
                Ok(kind) => PyErr::from_type(
                    kind.cast_into().expect("an exception type"),
                    error.to_string(),
                ),
                Err(import_error) => import_error,
            }
        } else {
            PyValueError::new_err(error.to_string())
        }
    })?;
    let result = PyArray2::<f64>::zeros(py, [rows, rows], false);
    {
        let mut out = result.readwrite();
        let mut out = out.as_array_mut();
        for row in 0..rows {
            for col in 0..rows {
                out[[row, col]] = inverse.get(row, col);
            }
        }
    }
    Ok(result)
}

/// Monte-Carlo pi and matrix inversion, parallel in Rust (parpool).
#[pymodule]
fn parpool(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let collections = py.import("collections")?;
    let pi_result =
        collections.call_method1("namedtuple", ("PiResult", ("estimate", "inside", "total")))?;
    pi_result.setattr("__module__", "parpool")?;
    pi_result.setattr(
        "__doc__",
        "The result of parpool.pi: the estimate 4 * inside / total, the darts \
         inside the quarter circle (inside) and the darts thrown (total).",
    )?;
    module.add("PiResult", pi_result)?;
    module.add_class::<PyCpus>()?;
    module.add_function(wrap_pyfunction!(cpus_py, module)?)?;
    module.add_function(wrap_pyfunction!(pi_py, module)?)?;
    module.add_function(wrap_pyfunction!(invert_py, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
