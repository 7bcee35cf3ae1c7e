#!/bin/bash
# The step after a sharded pull (configs/slurm-pull.sh): says which shards finished, failed,
# died or never ran, and exits non-zero until every shard has finished without error.
#SBATCH --job-name=xnatsync-status
#SBATCH --time=00:10:00
#SBATCH --output=xnatsync-status-%j.log
set -euo pipefail

xnatsync status --dest "${XNATSYNC_DEST:-mirror}"
