#!/bin/bash
# Submit a sharded pull: 16 array tasks, then the status step once they all ended (afterany,
# so that it reports the shards that failed too). Run from the folder that holds configs/.
set -euo pipefail

jobid=$(sbatch --parsable --array=0-15 configs/slurm-pull.sh)
sbatch --parsable --dependency="afterany:${jobid%%;*}" configs/slurm-status.sh
