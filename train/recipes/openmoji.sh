#!/usr/bin/env bash
# The bundled line-art -> colour model (checkpoints/lineart2color) and its comparison runs.
#
#   bash train/recipes/openmoji.sh data       # render OpenMoji (npm pack openmoji@17.0.0)
#   bash train/recipes/openmoji.sh train      # the three runs below, side by side
#   bash train/recipes/openmoji.sh noaug      # the augmentation check (run after `train`)
#   bash train/recipes/openmoji.sh curves     # val metrics of every snapshot -> runs/<name>/curve.json
#   bash train/recipes/openmoji.sh export RUN STEP  # the snapshot chosen on the curves -> checkpoints/
#
# The runs share everything (unet_256 ngf 16, 70x70 PatchGAN ndf 16, 256-px crops of 286 px,
# mirroring, Adam 2e-4 / (0.5, 0.999), batch 1, seed 0) except the loss:
#   lineart-gan10   cGAN + 10 * L1      (the shipped model: colour is the point, see docs/RESULTS.md)
#   lineart-gan100  cGAN + 100 * L1     (the paper's weighting)
#   lineart-l1      100 * L1 only       (the baseline)
# A watcher copies each checkpoint's generator to runs/<name>/snapshots/ (the trainer keeps only
# the newest checkpoint), so held-out metrics can be computed along the way and the best kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
RUNS=${RUNS:-runs}
DATA=${DATA:-data/openmoji}
STEPS=${STEPS:-8000}  # held-out metrics had stopped improving (docs/RESULTS.md)
mkdir -p "$RUNS"

COMMON=(--data "$DATA" --netG unet_256 --ngf 16 --ndf 16 --load-size 286 --crop-size 256
  --batch-size 1 --epochs 1 --epochs-decay 1 --max-steps "$STEPS" --save-every 500
  --sample-every 1000 --workers 0 --seed 0 --input-kind edges --dataset "OpenMoji 17 line art (openmoji.org)")

snapshots() {  # snapshots NAME: copy every new checkpoint's generator until the run ends
  local run=$RUNS/$1
  mkdir -p "$run/snapshots"
  while [ ! -f "$run/seconds.txt" ]; do
    for d in "$run"/checkpoint/step-*; do
      [ -f "$d/generator.safetensors" ] || continue
      local step=${d##*step-}
      [ -f "$run/snapshots/step-$step.safetensors" ] && continue
      cp "$d/generator.safetensors" "$run/snapshots/.tmp" 2>/dev/null &&
        mv "$run/snapshots/.tmp" "$run/snapshots/step-$step.safetensors"
    done
    sleep 20
  done
}

run() {  # run NAME EXTRA...
  local name=$1 start=$SECONDS
  shift
  rm -rf "${RUNS:?}/$name"
  mkdir -p "$RUNS/$name"
  snapshots "$name" &
  $PY -m train.train "${COMMON[@]}" --out "$RUNS/$name" "$@" >"$RUNS/$name.log" 2>&1
  echo $((SECONDS - start)) >"$RUNS/$name/seconds.txt"
  wait
  echo "$name: $((SECONDS - start)) s"
}

case "${1:-}" in
  data) $PY -m train.datasets.openmoji --out "$DATA" --fetch ;;
  train)
    run lineart-gan10 --lambda-l1 10 &
    run lineart-gan100 --lambda-l1 100 &
    run lineart-l1 --no-gan &
    wait
    ;;
  noaug)  # cGAN + 10 L1 without the width / gap variants, constant LR as lineart-gan10 to step 5193
    $PY -m train.datasets.openmoji --out "$DATA-noaug" --widths 1.0 --fetch
    run lineart-gan10-noaug --data "$DATA-noaug" --lambda-l1 10 --epochs 100 --epochs-decay 0 \
      --max-steps 3000
    ;;
  curves)
    for name in lineart-gan10 lineart-gan100 lineart-l1; do
      $PY -m train.curves "$RUNS/$name" --data "$DATA" --split val --every 1000
    done
    ;;
  export)
    run=${2:?which run} step=$(printf %09d "${3:?which snapshot step}")
    rm -rf checkpoints/lineart2color
    $PY -m pix2pix.convert "$RUNS/$run/snapshots/step-$step.safetensors" checkpoints/lineart2color --fp16 \
      --input-kind edges --train-size 256 --patch 70 --dataset "OpenMoji 17 line art (openmoji.org)" \
      --license cc-by-sa-4.0 \
      --notes "Line art to colour, trained on OpenMoji (openmoji.org), CC BY-SA 4.0: $run, step $3 (the paper's recipe, unet_256 ngf 16, 70x70 PatchGAN, 256 px, width-augmented pairs; see docs/RESULTS.md). The weights are shared under the same licence (CC BY-SA 4.0)."
    ;;
  *) echo "usage: $0 data | train | noaug | curves | export RUN STEP" >&2; exit 2 ;;
esac
