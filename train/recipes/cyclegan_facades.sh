#!/usr/bin/env bash
# The bundled CycleGAN (checkpoints/facades-cyclegan) and the paired models it is scored against:
# the CycleGAN paper's protocol (section 5.1.4) on data that has pairs, with the training pairs
# broken for CycleGAN and a paired test split kept aside; pix2pix on the pairs is the upper bound.
#
#   bash train/recipes/cyclegan_facades.sh data        # synthetic facades + the unpaired copy
#   bash train/recipes/cyclegan_facades.sh cyclegan    # the CycleGAN run (resumes if stopped)
#   bash train/recipes/cyclegan_facades.sh baselines   # pix2pix and L1 only, both directions
#   bash train/recipes/cyclegan_facades.sh segmenter   # FCN-score's segmenter (real photos)
#   bash train/recipes/cyclegan_facades.sh export      # CycleGAN pair + pix2pix -> checkpoints/
#   bash train/recipes/cyclegan_facades.sh report      # docs/RESULTS.md's CycleGAN section
#
# Data: the procedural CMP-style facades (train/datasets/synthetic_facades.py, 400 train / 100
# test pairs, 12 classes). train.datasets.unpaired renames each side of the training split by its
# own permutation; the trainer draws a random B for each A (the reference's unaligned loader).
#
# Budget, the same for every model: 128 px crops of 143 px (the reference's recipe for 128 px:
# ResNet-6), batch 1, 15 epochs = 6000 steps (8 at a constant LR, 7 decayed linearly to 0), seed 0,
# --mixed-precision auto (bf16 on CPUs that compute it natively). Widths chosen so that the
# generators are of a size: CycleGAN's ResNet-6 at ngf 32 has 2.0 M parameters per direction,
# pix2pix's unet_128 at ngf 16 has 2.6 M; every discriminator is the 70x70 PatchGAN at ndf 16.
# CycleGAN: LSGAN, cycle loss 10, no identity loss (the paper uses it for paintings <-> photos,
# not for labels <-> photos), history pool of 50. pix2pix: vanilla cGAN + 100 L1; L1 only: 100 L1.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${RUNS:-runs}
DATA=${DATA:-data/facades}
UNPAIRED=${UNPAIRED:-data/facades-unpaired}
BUDGET=(--load-size 143 --crop-size 128 --batch-size 1 --epochs 8 --epochs-decay 7 --seed 0
  --save-every 500 --sample-every 1000 --workers 0 --mixed-precision auto)
NAME="synthetic facades (train.datasets.synthetic_facades --seed 0)"

source train/recipes/lib.sh  # timed

paired() {  # paired NAME DIRECTION EXTRA...
  local name=$1 direction=$2
  shift 2
  rm -rf "${RUNS:?}/$name"
  local kind=labels
  [ "$direction" = BtoA ] && kind=photo
  timed "$name" $PY -m train.train --data "$DATA" --out "$RUNS/$name" --netG unet_128 --ngf 16 \
    --ndf 16 --direction "$direction" --input-kind "$kind" --dataset "$NAME" "${BUDGET[@]}" "$@"
}

case "${1:-}" in
  data)
    [ -d "$DATA" ] || $PY -m train.datasets.synthetic_facades --out "$DATA" --seed 0
    [ -d "$UNPAIRED" ] || $PY -m train.datasets.unpaired --data "$DATA" --out "$UNPAIRED"
    ;;
  cyclegan)
    if [ -d "$RUNS/facades-cyclegan/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/facades-cyclegan"
    else
      $PY -m train.train --model cyclegan --data-a "$UNPAIRED/trainA" --data-b "$UNPAIRED/trainB" \
        --out "$RUNS/facades-cyclegan" --netG resnet_6blocks --ngf 32 --ndf 16 \
        --lambda-identity 0 --domain-a labels --domain-b photo --input-kind labels \
        --input-kind-b photo --dataset "synthetic facades, pairs broken (train.datasets.unpaired)" \
        "${BUDGET[@]}"
    fi
    ;;
  baselines)
    paired facades128-pix2pix AtoB --patch 70
    paired facades128-l1 AtoB --no-gan
    paired facades128-pix2pix-back BtoA --patch 70
    paired facades128-l1-back BtoA --no-gan
    ;;
  segmenter)
    [ -d "$RUNS/segmenter" ] || $PY -m train.segmentation --data "$DATA" --out "$RUNS/segmenter" \
      --size 128 --width 16 --steps 800 --batch-size 8 --seed 0 --workers 0
    ;;
  export)
    rm -rf checkpoints/facades-cyclegan checkpoints/facades128-pix2pix checkpoints/facades128-pix2pix-back
    # Dataset names for visitors (the app shows them); the runs' own name the commands.
    $PY -m pix2pix.convert "$RUNS/facades-cyclegan" checkpoints/facades-cyclegan --fp16 \
      --input-kind labels --input-kind-b photo --license mit \
      --dataset "procedural CMP-style facades, trained without pairs (pairs broken)"
    for name in facades128-pix2pix facades128-pix2pix-back; do
      $PY -m pix2pix.convert "$RUNS/$name" "checkpoints/$name" --fp16 --license mit \
        --dataset "procedural CMP-style facades, paired"
    done
    ;;
  report)
    $PY -m train.report_cyclegan --data "$DATA" --segmenter "$RUNS/segmenter" --runs "$RUNS" \
      --model "CycleGAN (unpaired)=$RUNS/facades-cyclegan" \
      --model "pix2pix (paired)=$RUNS/facades128-pix2pix,$RUNS/facades128-pix2pix-back" \
      --model "L1 only (paired)=$RUNS/facades128-l1,$RUNS/facades128-l1-back"
    ;;
  *)
    echo "usage: $0 data | cyclegan | baselines | segmenter | export | report" >&2
    exit 2
    ;;
esac
