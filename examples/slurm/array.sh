#!/bin/bash
# examples/slurm/array.sh: a job array, parpool's threads inside each array task.
#SBATCH --job-name=pi-array
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --output=target/pi-array-%A_%a.out
srun target/release/examples/pi --tasks 8 --samples 1000000 --seed "$SLURM_ARRAY_TASK_ID"
