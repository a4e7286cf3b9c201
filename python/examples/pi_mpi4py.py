"""The lesson's Parallel-3 exercise: mpi4py across ranks, parpool threads inside.

mpi4py spreads the tasks over the ranks; on each rank, parpool.pi runs that
rank's tasks on threads (the GIL is released while Rust computes). Each rank
prints its count before the gather; after the gather rank 0 prints every
rank's count and the estimate.

    mpiexec -n 2 python python/examples/pi_mpi4py.py
    mpiexec -n 2 python python/examples/pi_mpi4py.py --tasks 16 --samples 10000000 --workers 1

The threads per rank default to parpool.cpus().count inside the rank: bind
ranks to cores (mpiexec -bind-to core, srun --cpu-bind=cores) or pass
--workers, or several ranks share the same cores.
"""

import argparse
import time

from mpi4py import MPI

import parpool


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks in all (default 8)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="darts per task")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workers", type=int, default=None, help="threads per rank")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    started = MPI.Wtime()
    # Rank r takes every size-th task (r, r + size, ...). Task t draws from
    # its own stream (seed, t), whichever rank runs it, so the ranks'
    # counts add up to the same estimate on any number of ranks (and to
    # what `cargo run --example pi` prints for the same tasks and seed).
    my_tasks = range(rank, args.tasks, size)
    inside = total = 0
    if my_tasks:
        result = parpool.pi(my_tasks, args.samples, workers=args.workers, seed=args.seed)
        inside, total = result.inside, result.total
    threads = args.workers or parpool.cpus().count
    print(
        f"rank {rank}/{size}: {len(my_tasks)} task(s) on {threads} thread(s): "
        f"{inside} of {total} inside (before gather)",
        flush=True,
    )
    counts = comm.gather((inside, total), root=0)
    if rank == 0:
        print(f"rank 0: after gather: {counts}")
        all_inside = sum(c[0] for c in counts)
        all_total = sum(c[1] for c in counts)
        estimate = 4.0 * all_inside / all_total
        print(
            f"pi ~ {estimate:.10f} from {all_total} darts on {size} rank(s) "
            f"in {MPI.Wtime() - started:.4f} s"
        )


if __name__ == "__main__":
    main()
