#!/bin/bash
# examples/slurm/hybrid.sh: MPI ranks (an MPICH build), threads inside each.
#SBATCH --job-name=pi-hybrid
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --output=target/pi-hybrid-%j.out
srun --mpi=pmi2 --kill-on-bad-exit=1 --cpu-bind=cores target/release/examples/pi_mpi --tasks 8 --samples 1000000
