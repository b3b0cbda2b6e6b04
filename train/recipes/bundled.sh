#!/usr/bin/env bash
# Reproduces every bundled model in checkpoints/ and the data they were trained on.
#
#   bash train/recipes/bundled.sh            # all of it (CPU: about an hour on 2 cores)
#   bash train/recipes/bundled.sh facades    # one part: data | facades | sketch | segmenter | classifier | export
#
# Runs two trainings at a time with one thread each (on a 2-core CPU that beats one run on two
# threads). Each run's wall time goes to runs/<name>/seconds.txt. Needs Debian's
# dataset-fashion-mnist package for the sketch model.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
RUNS=${RUNS:-runs}
mkdir -p "$RUNS"

source train/recipes/lib.sh  # timed

data() {
  $PY -m train.datasets.synthetic_facades --out data/facades --seed 0
  $PY -m train.datasets.fashion_mnist --out data/fashion --size 64
}

# The patch-size study: identical G, data, budget and seed; only the discriminator differs.
FACADES=(--data data/facades --netG unet_256 --ngf 16 --ndf 16 --load-size 286 --crop-size 256
  --batch-size 1 --epochs 5 --epochs-decay 5 --save-every 1000 --sample-every 1000 --workers 0
  --seed 0 --input-kind labels --dataset synthetic-facades)

facades_run() {  # facades_run NAME EXTRA...
  local name=$1
  shift
  rm -rf "$RUNS/$name"
  timed "$name" $PY -m train.train "${FACADES[@]}" --out "$RUNS/$name" "$@"
}

facades() {
  facades_run facades-patch70 --patch 70 &
  facades_run facades-l1 --no-gan &
  wait
  facades_run facades-patch1 --patch 1 &
  facades_run facades-patch16 --patch 16 &
  wait
  facades_run facades-patch286 --patch 286 &
  sketch &
  wait
}

sketch() {
  rm -rf "$RUNS/sketch2product"
  timed sketch2product $PY -m train.train --data data/fashion --out "$RUNS/sketch2product" \
    --netG unet_128 --num-downs 6 --ngf 32 --ndf 32 --load-size 72 --crop-size 64 \
    --batch-size 4 --max-steps 3000 --save-every 1000 --sample-every 1000 --workers 0 --seed 0 \
    --input-kind edges --dataset fashion-mnist-shoes-bags \
    --notes "Edges (pix2pix.edges, Canny) to product photos: Fashion-MNIST sandals, sneakers, bags and ankle boots, upsampled to 64 px."
}

segmenter() {
  rm -rf "$RUNS/segmenter"
  timed segmenter $PY -m train.segmentation --data data/facades --out "$RUNS/segmenter" \
    --size 128 --width 16 --steps 800 --batch-size 8 --seed 0 --workers 0
}

classifier() {
  rm -rf "$RUNS/classifier"
  timed classifier $PY -m train.classifier --data data/fashion --out "$RUNS/classifier" \
    --steps 1500 --seed 0
}

export_models() {  # fp16 copies in our Hub format, checked against the fp32 originals
  for name in facades-patch1 facades-patch16 facades-patch70 facades-patch286 facades-l1 sketch2product; do
    rm -rf "checkpoints/$name"
    $PY -m pix2pix.convert "$RUNS/$name" "checkpoints/$name" --fp16 --license mit
  done
}

case "${1:-all}" in
  data) data ;;
  facades) facades ;;
  sketch) sketch ;;
  segmenter) segmenter ;;
  classifier) classifier ;;
  export) export_models ;;
  all) data; facades; segmenter & classifier & wait; export_models ;;
  *) echo "unknown part $1" >&2; exit 2 ;;
esac
