#!/bin/bash
# A pull sharded over a Slurm job array: each array task pulls the sessions whose accession ID
# hashes to its shard, with its own journal and lock under DEST/.xnatsync. Submit with
# configs/slurm-submit.sh (the array, then a status step that runs once every task ended):
#
#   jobid=$(sbatch --parsable --array=0-15 configs/slurm-pull.sh)
#   sbatch --dependency=afterany:$jobid configs/slurm-status.sh
#
# --shard auto reads SLURM_ARRAY_TASK_ID, _COUNT, _MIN and _STEP, so any --array=A-B[:S]
# works (1-8 is shards 0..7). Credentials come from the environment sbatch exports
# (XNATSYNC_USER and XNATSYNC_PASSWORD, or an alias token with --token-env). The server is
# shared: --total-concurrency is for the whole array (each task runs T/N transfers).
# On Lustre, GPFS or NFS each journal is opened in SQLite's exclusive mode (no shared memory;
# xnatsync says so). A rerun of the array, or of one task, resumes where it stopped.
#SBATCH --job-name=xnatsync-pull
#SBATCH --array=0-15
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=2-00:00:00
#SBATCH --output=xnatsync-pull-%A_%a.log
set -euo pipefail

xnatsync pull https://xnat.example.org --project DEMO --dest "${XNATSYNC_DEST:-mirror}" \
    --shard auto --total-concurrency 32 --no-progress
