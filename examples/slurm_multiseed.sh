#!/bin/bash
# One `ecg multiseed` grid as a Slurm job array: array task K runs the K-th of SHARDS shares
# (`--shard K/SHARDS`, balanced by expected cost), all into one --out on a shared filesystem.
#
#   sbatch examples/slurm_multiseed.sh                   # tasks 1-8 of 8 shards
#   sbatch --array=3 examples/slurm_multiseed.sh         # rerun shard 3 alone (same SHARDS)
#   SHARDS=16 sbatch --array=1-16 examples/slurm_multiseed.sh
#
# Safe to rerun, requeue or cancel at any time: a run is trained only by the task holding its
# claim (a file lock the OS drops when the task dies), a killed task's unfinished run resumes
# from its last saved epoch when any task claims it again, and finished runs are never retrained.
# OUT/multiseed.json is rebuilt from every finished run each time one finishes; afterwards
# (e.g. if some task failed) rebuild it alone with the same command and --collect:
#
#   sbatch --dependency=afterany:<jobid> --wrap "bash examples/slurm_multiseed.sh --collect"
#
# Stopping: Slurm sends SIGTERM before it kills a job (at the time limit, on scancel or a
# preemption), then SIGKILL KillWait seconds later (30 s by default). ecgcli treats SIGTERM like
# Ctrl-C: the file being written is finished, the last completed epoch stays saved, the resume
# hint is printed, and it exits 143. Ask for the warning earlier so the current epoch's save has
# time: `--signal=B:TERM@120` sends SIGTERM to this script's process 120 s before the time limit
# (`B:` because `exec` below makes ecg that process; without `B:` only `srun` steps get it).
# Resume by rerunning the same job (or with --requeue, automatically): each unfinished run
# continues from its saved epoch. A single run is resumed with `ecg train supervised --resume RUN`.
#
# Every task must use the same grid (configurations, seeds, label fractions, options): edit
# GRID below, never per task. A task given a different grid for an existing OUT stops with one
# line ("was made by a different grid").
#
#SBATCH --job-name=ecg-multiseed
#SBATCH --array=1-8
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --output=ecg-multiseed-%A_%a.log
## one GPU per task (then --device auto picks it):
##SBATCH --gres=gpu:1

set -euo pipefail

SHARDS=${SHARDS:-8}                        # the number of shares: the --array range is 1-SHARDS
OUT=${OUT:-$PWD/runs/multiseed-cluster}    # on a filesystem every node sees, with file locking
export ECG_DATA_ROOT=${ECG_DATA_ROOT:-$PWD/data/PTB-XL}
export ECG_CACHE_DIR=${ECG_CACHE_DIR:-$OUT/.cache}   # built once (under a lock), then shared
export ECG_WORKERS=${ECG_WORKERS:-${SLURM_CPUS_PER_TASK:-1}}

GRID=(
  -c bce+standard
  -c focal+oversample
  --seeds 42,52,62,72,82
  --label-fractions 0.01,0.05,0.1,0.25,1.0
  --epochs 30
)

if [[ "${1:-}" == "--collect" ]]; then
  shift
  exec ecg multiseed "${GRID[@]}" --out "$OUT" --collect "$@"
fi

K=${SLURM_ARRAY_TASK_ID:?run this with sbatch --array=1-$SHARDS (or set SLURM_ARRAY_TASK_ID)}
echo "shard $K/$SHARDS on $(hostname), out $OUT"
exec ecg multiseed "${GRID[@]}" --out "$OUT" --shard "$K/$SHARDS" "$@"
