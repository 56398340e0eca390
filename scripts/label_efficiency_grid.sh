#!/usr/bin/env bash
# The label-efficiency grid on real PTB-XL: BYOL-pretrained resnet1d_wang fine-tuned against the
# strongest from-scratch configuration, chosen on fold 9 at every label fraction.
#
#   bash scripts/label_efficiency_grid.sh PTBXL_DIR OUT_DIR [small|ten|large|report ...]
#
# Stages, cheapest first (a stage's cost grows with its fractions; at 100% one resnet1d_wang
# epoch is about 5 minutes on one AMD EPYC core in fp32):
#   small   1, 2 and 5% of labels, 3 seeds, the search below on both sides
#   ten     10% of labels, 5 seeds, the same search
#   large   25, 50 and 100%, 3 seeds, the benchmark recipe on both sides (no search: at these
#           fractions the benchmark recipe is the strongest configuration we have)
#   report  ecg compare with --arm over every stage that has finished runs
# Every stage is an ordinary `ecg multiseed` grid: rerunning resumes it (finished runs are never
# trained again), and SHARD=K/N shares a stage between N processes or machines on one OUT_DIR.
# One torch thread per process; JOBS=2 trains two runs side by side on a 2-core machine.
# EPOCHS=N overrides every configuration's epochs (a smoke test: EPOCHS=1 on synthetic data).
# VAL_EVERY=K (default 5) validates on fold 9 every K epochs and after the last, on both sides
# alike: with 1% of labels, a resnet1d_wang epoch took 2 s to train and 42 s to score fold 9
# (one AMD EPYC core, fp32), so validating every 5th epoch makes a 50-epoch run about 4x faster.
# FRACTIONS=0.02 and SEEDS=42,52 run a stage at those fractions and seeds only: a share that one
# 2-core machine finishes in a sitting (one fraction of 1-5% in 1-2 hours). Give each share its
# own OUT_DIR (a grid folder may grow, never shrink, so a smaller share is refused where a
# larger grid was started), keep each grid's multiseed.json, and `python
# scripts/study_from_grid.py GRID.json ...` joins them into one study (other fractions, and
# other seeds of the same configurations).
set -uo pipefail
data=${1:?usage: label_efficiency_grid.sh PTBXL_DIR OUT_DIR [small|ten|large|report ...]}
out=${2:?usage: label_efficiency_grid.sh PTBXL_DIR OUT_DIR [small|ten|large|report ...]}
shift 2
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(small ten large report)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
encoder=${ENCODER:-byol-resnet1d_wang-ptbxl}  # the shipped BYOL encoder, or an `ecg train ssl` file

# The search: each side gets the same number of candidates, chosen on fold 9 by `--arm`.
scratch=(
  "bce+standard[encoder=resnet1d_wang,recipe=benchmark]"
  "bce+standard[encoder=resnet1d_wang,recipe=benchmark,lr=0.001]"
  "bce+standard[encoder=cnn1d]"
)
byol=(
  "finetune:byol=$encoder[encoder=resnet1d_wang,recipe=benchmark,encoder_lr=0.001]"
  "finetune:byol=$encoder[encoder=resnet1d_wang,recipe=benchmark,encoder_lr=0.0001]"
  "finetune:byol=$encoder[encoder=resnet1d_wang,recipe=reference,lr=0.001,encoder_lr=0.0001]"
)

grid() {  # NAME FRACTIONS SEEDS CONFIG...
  local name=$1 fractions=$2 seeds=$3; shift 3
  local cfgs=()
  for c in "$@"; do cfgs+=(-c "$c"); done
  echo "$(date -u +%FT%TZ) $name: ecg multiseed --label-fractions $fractions --seeds $seeds --out $out/$name"
  ecg multiseed --data-root "$data" --label-fractions "$fractions" --seeds "$seeds" --jobs "${JOBS:-1}" \
    ${SHARD:+--shard "$SHARD"} ${EPOCHS:+--epochs "$EPOCHS"} --set "val_every=${VAL_EVERY:-5}" \
    "${cfgs[@]}" --out "$out/$name"
}

arms() {  # the --arm options of the search (a method's name is its spec without the checkpoint)
  for c in "${scratch[@]}"; do printf '%s\0' --arm "scratch=$c"; done
  for c in "${byol[@]}"; do printf '%s\0' --arm "byol=${c/=$encoder/}"; done
}

for s in "${stages[@]}"; do
  case $s in
    small) grid small "${FRACTIONS:-0.01,0.02,0.05}" "${SEEDS:-42,52,62}" "${scratch[@]}" "${byol[@]}" ;;
    ten) grid ten 0.1 "${SEEDS:-42,52,62,72,82}" "${scratch[@]}" "${byol[@]}" ;;
    large) grid large "${FRACTIONS:-0.25,0.5,1.0}" "${SEEDS:-42,52,62}" "${scratch[0]}" "${byol[0]}" ;;
    report)
      mapfile -d '' arm_opts < <(arms)
      for g in small ten; do
        [ -f "$out/$g/multiseed.json" ] && ecg compare "$out/$g" "${arm_opts[@]}" --format markdown \
          --output "$out/$g/arms.md"
      done
      [ -f "$out/large/multiseed.json" ] && ecg compare "$out/large" --format markdown --output "$out/large/compare.md"
      true ;;
    *) echo "unknown stage $s (small, ten, large, report)" >&2; exit 2 ;;
  esac || exit $?
done
