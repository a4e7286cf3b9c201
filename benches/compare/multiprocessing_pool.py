"""Python's multiprocessing.Pool on the calls benches/processes.rs measures.

    python3 benches/compare/multiprocessing_pool.py

Prints best-of-5 times: Pool(2) create + map of 1000 items + close (fork
start method), and the per-item cost of Pool(2).map over 10**6 items.
"""
import multiprocessing as mp
import time


def square(x):
    return x * x


def best_of(repeats, body):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        best = min(best, time.perf_counter() - start)
    return best


def whole_call():
    with mp.Pool(2) as pool:
        pool.map(square, range(1000))


def main():
    mp.set_start_method("fork")
    call = best_of(5, whole_call)
    print(f"Pool(2) create + map(1000) + close: {call * 1e3:.2f} ms (best of 5)")
    with mp.Pool(2) as pool:
        per_item = best_of(5, lambda: pool.map(square, range(10**6))) / 10**6
    print(f"Pool(2).map over 10**6 items: {per_item * 1e9:.1f} ns per item (best of 5)")


if __name__ == "__main__":
    main()
