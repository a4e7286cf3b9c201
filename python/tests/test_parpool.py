"""Tests of the parpool Python package: results, errors, GIL, Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import parpool


def test_cpus_reports_a_count_and_the_rule_that_decided():
    found = parpool.cpus()
    assert found.count >= 1
    assert found.hardware >= 1
    assert found.source in {"EnvOverride", "Scheduler", "AffinityMask", "CgroupQuota", "Hardware"}
    assert found.description
    assert "Cpus(count=" in repr(found)


def test_cpus_follows_parpool_workers():
    code = "import parpool; c = parpool.cpus(); print(c.count, c.source)"
    env = dict(os.environ, PARPOOL_WORKERS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "EnvOverride"]


def test_pi_is_the_same_on_every_backend_and_worker_count():
    reference = parpool.pi(12, 20_000, backend="serial", seed=7)
    assert reference.total == 12 * 20_000
    assert reference.estimate == 4 * reference.inside / reference.total
    assert abs(reference.estimate - np.pi) < 0.05
    for backend in ["serial", "threads", "processes"]:
        for workers in [1, 2, 3]:
            assert parpool.pi(12, 20_000, backend=backend, workers=workers, seed=7) == reference
    estimate, inside, total = reference
    assert (estimate, inside, total) == (reference.estimate, reference.inside, reference.total)


def test_pi_gives_the_numbers_the_rust_example_prints():
    # `cargo run --example pi -- --tasks 4 --samples 1000 --backend serial`
    # prints estimate 3.22100000 for the default seed 2026.
    result = parpool.pi(4, 1000)
    assert result == (3.221, 3221, 4000)


def test_shares_of_the_task_numbers_add_up_to_the_whole_run():
    # What each mpi4py rank of examples/pi_mpi4py.py passes: its share.
    whole = parpool.pi(10, 5_000, seed=3)
    for ranks in [1, 2, 3, 4]:
        shares = [parpool.pi(range(rank, 10, ranks), 5_000, seed=3) for rank in range(ranks)]
        assert sum(share.inside for share in shares) == whole.inside
        assert sum(share.total for share in shares) == whole.total
    assert parpool.pi([9, 2], 5_000, seed=3).total == 10_000


@pytest.mark.parametrize(
    "call, kind, words",
    [
        (lambda: parpool.pi(0, 10), ValueError, "tasks"),
        (lambda: parpool.pi([1, -2], 10), ValueError, "task number"),
        (lambda: parpool.pi(None, 10), TypeError, "task numbers"),
        (lambda: parpool.pi(10, -1), ValueError, "samples"),
        (lambda: parpool.pi(10, 0), ValueError, "samples"),
        (lambda: parpool.pi(1, 1, seed=-5), ValueError, "seed"),
        (lambda: parpool.pi(1, 1, backend="gpu"), ValueError, "gpu"),
        (lambda: parpool.pi(1, 1, backend="mpi"), ValueError, "mpi4py"),
        (lambda: parpool.pi(1, 1, workers=0), ValueError, "workers"),
        (lambda: parpool.pi("ten", 1), TypeError, ""),
        (lambda: parpool.invert([[1.0, 2.0, 3.0]]), ValueError, "square"),
        (lambda: parpool.invert([1.0, 2.0]), ValueError, "2-D"),
        (lambda: parpool.invert(np.zeros((0, 0))), ValueError, "empty"),
        (lambda: parpool.invert([[np.inf]]), ValueError, "non-finite"),
        (lambda: parpool.invert([["a"]]), TypeError, "float64"),
        (lambda: parpool.invert(np.eye(3), workers=0), ValueError, "workers"),
    ],
)
def test_bad_arguments_raise_with_a_message(call, kind, words):
    with pytest.raises(kind) as raised:
        call()
    assert words in str(raised.value)


def test_invert_matches_numpy_and_returns_a_new_float64_array():
    rng = np.random.default_rng(5)
    a = rng.random((120, 120)) + 120 * np.eye(120)
    before = a.copy()
    x = parpool.invert(a, workers=2)
    assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (120, 120)
    assert np.allclose(x, np.linalg.inv(a), rtol=1e-10, atol=1e-12)
    assert np.array_equal(a, before)
    # Lists, integer and Fortran-ordered arrays convert.
    assert np.allclose(parpool.invert([[2, 0], [0, 4]]), [[0.5, 0], [0, 0.25]])
    assert np.allclose(parpool.invert(np.asfortranarray(a)), x)
    # The same on every worker count.
    assert np.array_equal(parpool.invert(a, workers=1), x)


def test_a_singular_matrix_raises_linalgerror():
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        parpool.invert([[1.0, 2.0], [2.0, 4.0]])


def test_the_gil_is_released_while_rust_computes():
    # A thread enters a long parpool call; the main thread then runs Python.
    # Were the GIL held for the whole call, the main thread could only run
    # after the call returned.
    order = []
    entering = threading.Event()

    def compute():
        entering.set()
        parpool.pi(8, 200_000_000, workers=1)  # about 0.3 s here
        order.append("parpool returned")

    thread = threading.Thread(target=compute)
    thread.start()
    entering.wait()
    time.sleep(0.01)  # let the thread get into Rust
    order.append("main thread ran")
    thread.join()
    assert order == ["main thread ran", "parpool returned"], order


def os_threads():
    """Threads of this process as the OS sees them: Rust's included, which
    Python's `threading` cannot see."""
    return len(os.listdir("/proc/self/task"))


def thread_names():
    """The names of this process's threads (`comm`), for failure messages."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:  # ended while we looked
            pass
    return sorted(names)


def settles_to(expected, measure, seconds=5.0):
    """`measure()` once it is back to `expected` (threads of a dropped pool
    exit soon after the call, not during it), or its last reading."""
    deadline = time.monotonic() + seconds
    while True:
        now = measure()
        if now <= expected or time.monotonic() > deadline:
            return now
        time.sleep(0.01)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_no_thread_is_left_running_after_a_call():
    # The process's shared thread pool lives as long as the process, by
    # design (as rayon's global pool does): start it before counting.
    parpool.pi(4, 10_000)
    # A thread that ended just before (an earlier test's) can still be
    # listed for a few milliseconds: fewer threads after than before is no
    # leak, more is.
    before = os_threads()
    names_before = thread_names()
    python_before = threading.active_count()
    for workers in [1, 2, 3]:
        parpool.pi(4, 10_000, workers=workers)
        parpool.pi(4, 10_000, workers=workers, backend="processes")
        parpool.invert(np.eye(50) * 2, workers=workers)
    after = settles_to(before, os_threads)
    assert after <= before, (names_before, thread_names())
    assert threading.active_count() == python_before


def test_ctrl_c_stops_a_long_call_with_keyboardinterrupt():
    # A child process gets SIGINT during a call that would take minutes.
    code = textwrap.dedent(
        """
        import sys, time, parpool
        print("started", flush=True)
        t = time.perf_counter()
        try:
            parpool.pi(100_000, 100_000_000, workers=2)
        except KeyboardInterrupt:
            print("interrupted after %.2f s" % (time.perf_counter() - t), flush=True)
            sys.exit(0)
        sys.exit("finished without an interrupt")
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        # The time limit only keeps a hang from stalling the run.
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, out
    assert "interrupted" in out
