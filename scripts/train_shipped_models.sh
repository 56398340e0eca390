#!/usr/bin/env bash
# Train (or resume) the runs behind the models that ship with ecgcli, on real PTB-XL.
#
#   bash scripts/train_shipped_models.sh PTBXL_DIR RUNS_DIR [superdiagnostic|lead-i|all|byol ...]
#
# Each run is started once and resumed after any interruption by running this script again: a
# finished run (metrics.json written) is skipped, a started one continues from its last saved
# epoch with `ecg train ... --resume`. One torch thread per run, so two runs share a 2-core
# machine; give each group its own invocation to run them side by side. Then ship a finished
# run with scripts/build_pretrained.py (its --command is the line printed here). EPOCHS=N trains
# the classifiers for N epochs instead of the benchmark recipe's 50 (the shipped
# ptbxl-superdiagnostic was trained with EPOCHS=30; its card gives the exact command). The
# shipped ptbxl-all is the 50-epoch run of scripts/leaderboard_runs.sh (stage all), not this one.
set -uo pipefail
data=${1:?usage: train_shipped_models.sh PTBXL_DIR RUNS_DIR [which ...]}
runs=${2:?usage: train_shipped_models.sh PTBXL_DIR RUNS_DIR [which ...]}
shift 2
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(superdiagnostic byol lead-i all)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
bench=(--data-root "$data" --encoder resnet1d_wang --recipe benchmark --label-fraction 1.0 --seed 42
       --calibrate temperature ${EPOCHS:+--epochs "$EPOCHS"})

run_or_resume() {  # KIND RUN_DIR ARGS...
  local kind=$1 run=$2; shift 2
  if [ -f "$run/metrics.json" ]; then echo "finished: $run"; return 0; fi
  if [ -f "$run/state/last.safetensors" ]; then
    echo "$(date -u +%FT%TZ) resume: ecg train $kind --resume $run"
    ecg train "$kind" --resume "$run"
  else
    echo "$(date -u +%FT%TZ) start: ecg train $kind $* --run-dir $run"
    ecg train "$kind" "$@" --run-dir "$run"
  fi
}

for w in "${which[@]}"; do
  case $w in
    superdiagnostic) run_or_resume supervised "$runs/ptbxl-superdiagnostic" "${bench[@]}" --task superdiagnostic ;;
    lead-i) run_or_resume supervised "$runs/ptbxl-superdiagnostic-lead-i" "${bench[@]}" --task superdiagnostic --leads I ;;
    all) run_or_resume supervised "$runs/ptbxl-all" "${bench[@]}" --task all ;;
    byol) run_or_resume ssl "$runs/byol-resnet1d_wang-ptbxl" --data-root "$data" --method byol \
            --encoder resnet1d_wang --signal-length 250 --epochs 8 --probe-every 2 --seed 42 ;;
    *) echo "unknown model $w (superdiagnostic, lead-i, all, byol)" >&2; exit 2 ;;
  esac || exit $?
done
