#!/bin/bash
# examples/slurm/threads.sh: one task, and its CPUs used by parpool's threads.
#SBATCH --job-name=pi-threads
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --output=target/pi-threads-%j.out
srun target/release/examples/pi --tasks 8 --samples 1000000
