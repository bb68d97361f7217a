#!/bin/bash
# Submit N shards as one Slurm array and the merge + claims job after them.
#   SHARDS=8 PLMTRANSFER_DATA=/data/flip examples/slurm/submit-grid.sh
set -euo pipefail
SHARDS="${SHARDS:-8}"
here="$(dirname "$0")"
array_job=$(sbatch --parsable --array="0-$((SHARDS - 1))" "${here}/plmtransfer-array.sbatch")
sbatch --dependency="afterok:${array_job}" --export="ALL,RUN_ID=slurm-${array_job}" "${here}/plmtransfer-merge.sbatch"
echo "shards: job ${array_job} (array 0-$((SHARDS - 1))); merge + claims queued after it"
