"""Side-by-side speed: parpool against the lesson's pure-Python Pool and NumPy.

    python python/benchmarks/compare.py                 # the tables in python/README.md
    python python/benchmarks/compare.py --quick         # small sizes, a smoke test

Pi: darts per second per worker for parpool.pi, NumPy's vectorized
sampler (one core) and the lesson's pure-Python sampler in a
multiprocessing Pool. Inversion: parpool.invert against numpy.linalg.inv,
each at 1 and 2 threads; NumPy's BLAS threads are set with
OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) in a fresh interpreter per
thread count, with OPENBLAS_CORETYPE unset. Every figure is the best of
--repeats runs; the spread (slowest / best) is printed beside it.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def best_of(repeats, call):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times), max(times) / min(times)


# The lesson's samplers, as the Rust side-by-side comparison runs them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches", "compare"))
from compare import sample as python_sample  # noqa: E402
from compare import sample_numpy as numpy_sample  # noqa: E402


def pi_rows(args):
    import multiprocessing

    import parpool

    rows = []
    darts = args.pi_darts
    for workers in (1, 2):
        seconds, spread = best_of(args.repeats, lambda: parpool.pi(16, darts // 16, workers=workers))
        rows.append(("parpool.pi (threads)", workers, darts / seconds / workers, spread))
    seconds, spread = best_of(args.repeats, lambda: numpy_sample(darts))
    rows.append(("NumPy vectorized", 1, darts / seconds, spread))
    python_darts = args.python_darts
    for workers in (1, 2):
        with multiprocessing.Pool(workers) as pool:
            seconds, spread = best_of(
                args.repeats,
                lambda: pool.map(python_sample, [python_darts // (4 * workers)] * (4 * workers)),
            )
        rows.append(("pure Python, multiprocessing.Pool", workers, python_darts / seconds / workers, spread))
    return rows


def inversion_child(n, threads, repeats):
    """Runs in a fresh interpreter whose BLAS thread count is already set."""
    import numpy as np

    import parpool

    rng = np.random.default_rng(1)
    a = rng.random((n, n)) + n * np.eye(n)
    flops = 2.0 * n**3
    out = {}
    seconds, spread = best_of(repeats, lambda: np.linalg.inv(a))
    x = np.linalg.inv(a)
    out["numpy"] = (flops / seconds / 1e9, spread, float(np.linalg.norm(a @ x - np.eye(n)) / np.linalg.norm(a)))
    seconds, spread = best_of(repeats, lambda: parpool.invert(a, workers=threads))
    x = parpool.invert(a, workers=threads)
    out["parpool"] = (flops / seconds / 1e9, spread, float(np.linalg.norm(a @ x - np.eye(n)) / np.linalg.norm(a)))
    print(json.dumps(out))


def inversion_rows(args):
    rows = []
    for threads in (1, 2):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        env.pop("OPENBLAS_CORETYPE", None)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(args.n), str(threads), str(args.repeats)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        for name in ("parpool", "numpy"):
            rows.append((name, threads) + tuple(result[name]))
    return rows


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line for line in lines if line.startswith("flags"))
        return model, "avx512f" in flags.split()
    except (OSError, StopIteration):
        return platform.processor() or "unknown", False


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        inversion_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000, help="matrix size")
    args = parser.parse_args()
    args.pi_darts = 16 * 25_000_000
    args.python_darts = 4_000_000
    if args.quick:
        args.repeats, args.n = 1, 200
        args.pi_darts, args.python_darts = 16 * 100_000, 40_000

    import numpy

    model, avx512 = cpu_model()
    print(f"CPU: {model}, {os.cpu_count()} CPUs, AVX-512: {'yes' if avx512 else 'no'}; "
          f"Python {platform.python_version()}, NumPy {numpy.__version__}")
    print()
    print("Pi, darts per second per worker (best of %d):" % args.repeats)
    print()
    print("| implementation | workers | darts/s per worker | vs NumPy | spread |")
    print("|---|---|---|---|---|")
    rows = pi_rows(args)
    numpy_rate = next(rate for name, _, rate, _ in rows if name.startswith("NumPy"))
    for name, workers, rate, spread in rows:
        print(f"| {name} | {workers} | {rate:.3g} | {rate / numpy_rate:.1f}x | {spread:.2f} |")
    print()
    print(f"Inversion, n = {args.n}, GFLOP/s (2n^3 flops; best of {args.repeats}):")
    print()
    print("| implementation | threads | GFLOP/s | spread | residual ‖AX−I‖/‖A‖ |")
    print("|---|---|---|---|---|")
    for name, threads, rate, spread, residual in inversion_rows(args):
        label = "parpool.invert" if name == "parpool" else "numpy.linalg.inv"
        print(f"| {label} | {threads} | {rate:.1f} | {spread:.2f} | {residual:.1e} |")


if __name__ == "__main__":
    main()
