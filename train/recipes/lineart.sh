#!/usr/bin/env bash
# The bundled line-art -> colour model with colour hints (checkpoints/lineart2color), session 8.
#
#   bash train/recipes/lineart.sh data              # OpenMoji + four Iconify emoji sets (npm pack)
#   bash train/recipes/lineart.sh train             # the run (resumes exactly if stopped)
#   bash train/recipes/lineart.sh export [STEP]     # the final model (or a snapshot) -> checkpoints/
#   bash train/recipes/lineart.sh report            # docs/RESULTS.md's section and grid
#
# Data: OpenMoji 17's designer line art (CC BY-SA 4.0; widths 0.6 / 1.0 / 1.6, gaps) plus line art
# derived from the flat colour fills of Fluent Emoji Flat (MIT), Twemoji (CC BY 4.0), Noto Emoji
# (Apache 2.0; icons with gradients left out) and Emoji One (CC BY 4.0): train/datasets/iconify.py.
# Splits by concept across all sets (OpenMoji's splits kept, so the old test split is unchanged).
#
# Recipe: the paper's (unet_256, 70x70 PatchGAN, cGAN + 100 L1, Adam 2e-4 / (0.5, 0.999), 286 ->
# 256 crops, mirroring, N(0, 0.02)) at ngf 16 / ndf 16 (the browser budget), batch 4 (the paper's
# batch for edges -> photos), colour-hint dabs on half the examples (--hints), EPOCHS constant +
# DECAY linearly decayed epochs. --mixed-precision auto: bf16 where the CPU or GPU computes it
# natively, else fp32. A checkpoint every 1000 steps: `train` again continues exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
RUNS=${RUNS:-runs}
DATA=${DATA:-data/lineart}
RUN=${RUN:-lineart-hints}
EPOCHS=${EPOCHS:-4}
DECAY=${DECAY:-3}
SETS=(fluent-emoji-flat twemoji noto emojione)
NAME="OpenMoji 17 line art + line art derived from Fluent Emoji Flat, Twemoji, Noto Emoji, Emoji One"

case "${1:-}" in
  data)
    $PY -m train.datasets.openmoji --out "$DATA" --fetch
    $PY -m train.datasets.iconify --into "$DATA" --fetch "${SETS[@]}"
    ;;
  train)
    mkdir -p "$RUNS"
    if [ -d "$RUNS/$RUN/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN"
    else
      $PY -m train.train --data "$DATA" --out "$RUNS/$RUN" --netG unet_256 --ngf 16 --ndf 16 \
        --load-size 286 --crop-size 256 --batch-size 4 --epochs "$EPOCHS" --epochs-decay "$DECAY" \
        --lambda-l1 100 --hints --save-every 1000 --sample-every 1000 --seed 0 \
        --mixed-precision auto --input-kind edges --dataset "$NAME"
    fi
    ;;
  export)
    src="$RUNS/$RUN"
    if [ -n "${2:-}" ]; then
      src="$RUNS/$RUN/checkpoint/step-$(printf %09d "$2")/generator.safetensors"
    fi
    rm -rf checkpoints/lineart2color
    $PY -m pix2pix.convert "$src" checkpoints/lineart2color --fp16 --input-kind edges \
      --train-size 256 --patch 70 --hints --dataset "$NAME" --license cc-by-sa-4.0 \
      --notes "Line art to colour with colour hints: a dab of colour inside a shape chooses that shape's colour. $RUN, the paper's recipe at ngf 16 (unet_256, 70x70 PatchGAN, cGAN + 100 L1, batch 4, 256 px crops of 286 px, mirroring) with colour-hint dabs sampled from the targets; see docs/RESULTS.md and train/recipes/lineart.sh. Data: OpenMoji (openmoji.org), CC BY-SA 4.0 (designer line art); line art derived from the flat colour fills of Fluent Emoji Flat (Microsoft Corporation), MIT; Twemoji (Twitter), CC BY 4.0; Noto Emoji (Google Inc), Apache 2.0; Emoji One, CC BY 4.0. The weights are shared under the same licence as OpenMoji's data, CC BY-SA 4.0 (share alike); the other sets' licences allow that, with their credits kept here."
    ;;
  report)
    $PY -m train.report_colour --data "$DATA" --shipped "${SHIPPED:-checkpoints/lineart2color-old}" \
      --new checkpoints/lineart2color
    ;;
  *) echo "usage: $0 data | train | export [STEP] | report" >&2; exit 2 ;;
esac
