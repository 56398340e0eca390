#!/usr/bin/env bash
# The leaderboard's real-data runs: every PTB-XL task at the benchmark's full 50 epochs, the S4
# encoder, and ensembles of the two.
#
#   bash scripts/leaderboard_runs.sh PTBXL_DIR OUT_DIR [STAGE ...]
#
# Stages (one run each, one torch thread; give each its own invocation to run two side by side):
#   all | diagnostic | rhythm | superdiagnostic | subdiagnostic | form
#                      resnet1d_wang, the benchmark recipe, 50 epochs, seed 42  -> OUT_DIR/e50
#   s4-superdiagnostic | s4-all
#                      s4 at its default size (width 64 x depth 4, see results/s4_speed.json),
#                      the benchmark recipe with a peak learning rate of 1e-3 (the state-space
#                      layers' usual rate; 1e-2 is the CNNs'), 50 epochs, seed 42  -> OUT_DIR/s4
#   ensemble-superdiagnostic | ensemble-all
#                      ecg ensemble of the two runs above for that task, written where the
#                      leaderboard finds it: OUT_DIR/e50/TASK/ensembles/wang+s4
#   show               both leaderboards (ecg benchmark --show)
# Then `python scripts/study_from_leaderboard.py OUT_DIR --commit SHA --command "..."` writes the
# results study the documentation renders. The 50-epoch run of `all` ships as ptbxl-all.
# Every training stage is an `ecg benchmark` grid: rerunning it resumes an interrupted run and
# reuses a finished one. EPOCHS=N overrides the 50 epochs (a smoke test: EPOCHS=1, synthetic data).
# VAL_EVERY=K (default 5) scores fold 9 every K epochs and after the last, as the label-efficiency
# grid does. OMP_NUM_THREADS=2 gives one stage both cores of a
# 2-core machine (one thread each is for two stages side by side).
set -uo pipefail
data=${1:?usage: leaderboard_runs.sh PTBXL_DIR OUT_DIR [STAGE ...]}
out=${2:?usage: leaderboard_runs.sh PTBXL_DIR OUT_DIR [STAGE ...]}
shift 2
[ $# -gt 0 ] || { echo "name at least one stage (see the top of this script)" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
epochs=${EPOCHS:-50}

bench() {  # OUT ENCODER TASK [OPTIONS...]
  local dir=$1 encoder=$2 task=$3; shift 3
  echo "$(date -u +%FT%TZ) ecg benchmark --encoders $encoder --tasks $task --epochs $epochs --seeds 42 $* --out $dir"
  ecg benchmark --data-root "$data" --encoders "$encoder" --tasks "$task" --epochs "$epochs" --seeds 42 \
    --calibrate temperature --val-every "${VAL_EVERY:-5}" "$@" --out "$dir"
}

run_dir() {  # OUT TASK: the one finished run of that grid (fails if there is none)
  local found
  found=$(find "$1/$2" -name metrics.json -path '*seed42*' -not -path '*/ensembles/*' 2>/dev/null | head -n 1)
  [ -n "$found" ] || { echo "no finished run under $1/$2" >&2; return 1; }
  dirname "$found"
}

ensemble() {  # TASK
  local task=$1 dest="$out/e50/$1/ensembles/wang+s4" wang s4
  if [ -f "$dest/metrics.json" ]; then echo "finished: $dest"; return 0; fi
  wang=$(run_dir "$out/e50" "$task") && s4=$(run_dir "$out/s4" "$task") || return 1
  echo "$(date -u +%FT%TZ) ecg ensemble $wang $s4 --out $dest"
  ecg ensemble "$wang" "$s4" --out "$dest"
}

for stage in "$@"; do
  case $stage in
    all | diagnostic | rhythm | superdiagnostic | subdiagnostic | form)
      bench "$out/e50" resnet1d_wang "$stage" ;;
    s4-superdiagnostic | s4-all) bench "$out/s4" s4 "${stage#s4-}" --lr 0.001 ;;
    ensemble-superdiagnostic | ensemble-all) ensemble "${stage#ensemble-}" ;;
    show)
      ecg benchmark --data-root "$data" --show --out "$out/e50"
      ecg benchmark --data-root "$data" --show --encoders s4 --out "$out/s4" ;;
    *) echo "unknown stage $stage (see the top of this script)" >&2; exit 2 ;;
  esac || exit $?
done
