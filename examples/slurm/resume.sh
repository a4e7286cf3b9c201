#!/bin/bash
# examples/slurm/resume.sh: pi through a journal, stopped by SIGTERM (time limit, scancel, preemption) and resumed when requeued.
#SBATCH --job-name=pi-resume
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=target/pi-resume.out
echo "start $(date +%T), restart count ${SLURM_RESTART_COUNT:-0}"
srun target/release/examples/resume --journal target/pi-resume.journal --tasks 48 --samples 400000000
