#!/bin/bash
# Submit N shards as one Slurm array and the merge + claims job after them.
#   SHARDS=8 PLMTRANSFER_DATA=/data/flip examples/slurm/submit-grid.sh
set -euo pipefail
SHARDS="${SHARDS:-8}"
here="$(dirname "$0")"
# Slurm opens --output=logs/... before the job starts: the directory must exist at submission
mkdir -p logs
array_job=$(sbatch --parsable --array="0-$((SHARDS - 1))" "${here}/plmtransfer-array.sbatch")
# afterany, not afterok: after a failed shard the merge still runs, and names what is missing
sbatch --dependency="afterany:${array_job}" --export="ALL,RUN_ID=slurm-${array_job}" "${here}/plmtransfer-merge.sbatch"
echo "shards: job ${array_job} (array 0-$((SHARDS - 1))); merge + claims queued after it"
