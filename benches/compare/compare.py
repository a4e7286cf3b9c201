"""Python side of the side-by-side comparison (run by benches/compare/run.sh).

Prints CSV rows with the columns of parpool's examples:
workload,implementation,workers,size,seconds,rate,unit,residual

    python compare.py pi-pure TASKS SAMPLES      # the lesson's pure-Python pi, Pool and ThreadPool
    python compare.py pi-numpy TASKS SAMPLES     # NumPy-vectorized pi, one process
    python compare.py inv N MATRIX_FILE THREADS  # numpy.linalg.inv on parpool's lesson matrix

For `inv`, set OPENBLAS_NUM_THREADS (and unset OPENBLAS_CORETYPE) in the
environment before Python starts: BLAS reads them once, at import.
"""
import math
import random
import sys
import time
from multiprocessing import Pool
from multiprocessing.pool import ThreadPool


def sample(n):
    """The lesson's function: throw n darts, count those inside."""
    inside = 0
    for _ in range(n):
        x, y = random.random(), random.random()
        if x * x + y * y < 1.0:
            inside += 1
    return n, inside


def sample_numpy(n):
    import numpy as np

    rng = np.random.default_rng()
    inside = 0
    block = 10_000_000
    for start in range(0, n, block):
        count = min(block, n - start)
        x = rng.random(count)
        y = rng.random(count)
        inside += int(np.count_nonzero(x * x + y * y < 1.0))
    return n, inside


def row(workload, implementation, workers, size, seconds, rate, unit, residual):
    print(f"{workload},{implementation},{workers},{size},{seconds:.6f},{rate:.3f},{unit},{residual:.3e}")


def pi_pure(tasks, samples):
    for name, pool_type in (("python-multiprocessing", Pool), ("python-threadpool", ThreadPool)):
        for workers in (1, 2):
            with pool_type(workers) as pool:
                start = time.perf_counter()
                results = pool.map(sample, [samples] * tasks)
                seconds = time.perf_counter() - start
            n = sum(r[0] for r in results)
            inside = sum(r[1] for r in results)
            row("pi", name, workers, n, seconds, n / seconds / 1e6, "Mdarts/s", abs(4 * inside / n - math.pi))


def pi_numpy(tasks, samples):
    import numpy  # noqa: F401  (imported before the clock starts)

    start = time.perf_counter()
    results = [sample_numpy(samples) for _ in range(tasks)]
    seconds = time.perf_counter() - start
    n = sum(r[0] for r in results)
    inside = sum(r[1] for r in results)
    row("pi", "numpy-vectorized", 1, n, seconds, n / seconds / 1e6, "Mdarts/s", abs(4 * inside / n - math.pi))


def inv(n, path, threads):
    import numpy as np

    a = np.fromfile(path, dtype="<f8").reshape((n, n), order="F")
    np.linalg.inv(a)  # warm up, as the faer baseline does
    start = time.perf_counter()
    x = np.linalg.inv(a)
    seconds = time.perf_counter() - start
    residual = np.linalg.norm(a @ x - np.eye(n)) / (np.linalg.norm(a) * np.linalg.norm(x))
    row("invert", "numpy-openblas", threads, n, seconds, 2 * n**3 / seconds / 1e9, "GFLOP/s", residual)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "pi-pure":
        pi_pure(int(sys.argv[2]), int(sys.argv[3]))
    elif command == "pi-numpy":
        pi_numpy(int(sys.argv[2]), int(sys.argv[3]))
    elif command == "inv":
        inv(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {command!r}; see the module docstring")
