#!/usr/bin/env bash
# The bundled line-art -> colour model with colour hints (checkpoints/lineart2color), session 8.
#
#   bash train/recipes/lineart.sh data              # OpenMoji + four Iconify emoji sets (npm pack)
#   bash train/recipes/lineart.sh train             # the run (resumes exactly if stopped)
#   bash train/recipes/lineart.sh finetune          # one more epoch with L1 only: smooth fills
#   bash train/recipes/lineart.sh hints             # 10 more epochs, L1, stronger hints (session 9)
#   bash train/recipes/lineart.sh propagate         # 11 more, G reads the hints spread (session 10)
#   bash train/recipes/lineart.sh recolour          # 4 more, dabs that disagree (session 12)
#   bash train/recipes/lineart.sh grey              # 2 more, grey dabs spread too (session 12)
#   bash train/recipes/lineart.sh region            # 2 more, a dab recolours its whole shape
#   bash train/recipes/lineart.sh commit            # 2 more, cGAN + L1 again (session 14, not shipped)
#   bash train/recipes/lineart.sh bins              # 3 more, G commits to colours (session 15)
#   bash train/recipes/lineart.sh export            # the last stage's model -> checkpoints/
#   bash train/recipes/lineart.sh report            # docs/RESULTS.md's section and grids
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
# Fine-tune: from the run's final generator, one epoch of 100 L1 alone (no discriminator), with
# the same dabs, Adam 1e-4 decayed linearly to 0: the GAN run's fills are blotchy (high-frequency
# energy 26 inside flat target regions, the targets' 0); this brings it to 9 at a slightly lower
# region colour error (docs/RESULTS.md compares both).
# Hints (session 9): the shipped model of session 8 put a dab's colour on the dab and little
# beyond it (median dE 26 in dabbed regions). From the fine-tuned generator, 10 more epochs of
# 100 L1 on the data as the builder now writes it (colourings of the same line art deduplicated:
# 10,501 training pairs), dabs on 70% of the examples (--hint-none-share 0.3) and 1 to 16 of
# them (--hint-max-dabs 16), Adam 1e-4 constant for 6 epochs, then decayed linearly to 0 over 4.
# The earlier stages ran on the data of session 8 (11,178 pairs, duplicates included).
# Propagate (session 10): the hints stage still left dabbed regions at median dE 21. From its
# generator, grown with --hint-propagation 48 (networks.HintPropagation: the dabs' colours spread
# over their shapes up to the lines, 48 steps of 4-px cells, as 4 more input channels whose first
# weights start at 0), 11 more epochs of 100 L1 with the hints stage's dabs: Adam 1e-4 constant
# for 6 epochs, then decayed linearly to 0 over 5.
# Recolour (session 12): the propagation spread a dab's colour over its whole shape, but where the
# dab disagreed with what the concept usually looks like (a green face), G painted the usual
# colour over it. From the propagate stage's generator, with the spread lengthened to 96 steps
# (a dab in one corner of a large shape now reaches the far corner), 4 more epochs of 100 L1 in
# which half of the dabs get a random colour and their shapes in the target the same colour
# (--hint-recolour 0.5): Adam 1e-4 constant for 2 epochs, then decayed linearly to 0 over 2.
# Grey (session 12): HintPropagation now spreads grey dabs too (lighter than a line, in cells
# they fill evenly). From the recolour stage's generator, 2 more epochs with a quarter of the
# random colours greys (--hint-recolour-grey 0.25): Adam 5e-5 for 1 epoch, decayed over 1. Not
# shipped: no better with dabs than the recolour stage's generator, and without them it painted
# 55% of the test drawings mainly yellow (the targets: 17%; the recolour stage: 25%).
# Region (session 12, shipped): the recolour stage recoloured only the target's pixels of the
# dab's colour, so where a shape held several colours with no line between them (a freehand
# house whose walls and roof are one shape) G coloured only part of it. From the recolour
# stage's generator, 2 more epochs in which a recoloured dab fills its whole closed shape in the
# target, flat (--hint-recolour-region): Adam 5e-5 for 1 epoch, decayed over 1. docs/RESULTS.md.
# Commit (session 14): since session 9 every stage was L1 alone, and without dabs G paints the
# median colour of shapes that look alike: 90% of the test drawings mainly orange or yellow (the
# targets: 33%). Session 8's cGAN run had coloured them with 8 distinct dominant hues. From the
# region stage's generator, with a new 70x70 PatchGAN (ndf 16), 2 epochs of the paper's cGAN +
# 100 L1 with the region stage's dabs: Adam 1e-4 for 1 epoch, decayed over 1. Not shipped: on 287
# test drawings it painted 70% of them mainly yellow (the region stage 49%, the targets 20%), at a
# higher no-hint error (50.2 against 46.4) and worse with dabs (54% within dE 10 against 62%).
# Bins (session 15): a second head of 24 logits over a palette fitted to the targets
# (--colour-bins, networks.ColourBins: Zhang et al. 2016's classification with class
# rebalancing and the annealed mean), used where no dab's colour reached and off the lines. From
# the region stage's generator, 3 epochs of 100 L1 + 10 x the rebalanced cross-entropy with the
# region stage's dabs: Adam 1e-4 for 1 epoch, decayed over 2. Not shipped: without hints it
# painted 98% of 100 test drawings mainly yellow at the paper's temperature (the region stage
# 36%, the targets 15%); a higher temperature only greys the colours (docs/RESULTS.md).
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
  finetune)
    $PY -m train.train --init-from "$RUNS/$RUN" --data "$DATA" --out "$RUNS/$RUN-l1" --no-gan \
      --hints --batch-size 4 --lr 1e-4 --epochs 0 --epochs-decay 1 --lambda-l1 100 \
      --save-every 1000 --sample-every 0 --seed 1 --input-kind edges --dataset "$NAME"
    ;;
  hints)
    if [ -d "$RUNS/$RUN-v3/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v3"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-l1" --data "$DATA" --out "$RUNS/$RUN-v3" \
        --no-gan --hints --hint-none-share 0.3 --hint-max-dabs 16 --batch-size 4 --lr 1e-4 \
        --epochs 6 --epochs-decay 4 --lambda-l1 100 --save-every 1000 --sample-every 1000 \
        --seed 2 --mixed-precision auto --compile off --input-kind edges --dataset "$NAME"
    fi
    ;;
  propagate)
    if [ -d "$RUNS/$RUN-v4/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v4"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v3" --data "$DATA" --out "$RUNS/$RUN-v4" \
        --no-gan --hints --hint-propagation 48 --hint-none-share 0.3 --hint-max-dabs 16 \
        --batch-size 4 --lr 1e-4 --epochs 6 --epochs-decay 5 --lambda-l1 100 --save-every 1000 \
        --sample-every 1000 --seed 3 --mixed-precision auto --compile off --input-kind edges \
        --dataset "$NAME"
    fi
    ;;
  recolour)
    if [ -d "$RUNS/$RUN-v7/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v7"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v4" --data "$DATA" --out "$RUNS/$RUN-v7" \
        --no-gan --hints --hint-propagation 96 --hint-recolour 0.5 --hint-none-share 0.3 \
        --hint-max-dabs 16 --batch-size 4 --lr 1e-4 --epochs 2 --epochs-decay 2 --lambda-l1 100 \
        --save-every 1000 --sample-every 1000 --seed 7 --mixed-precision auto --compile off \
        --input-kind edges --dataset "$NAME"
    fi
    ;;
  grey)
    if [ -d "$RUNS/$RUN-v8/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v8"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v7" --data "$DATA" --out "$RUNS/$RUN-v8" \
        --no-gan --hints --hint-propagation 96 --hint-recolour 0.5 --hint-recolour-grey 0.25 \
        --hint-none-share 0.3 --hint-max-dabs 16 --batch-size 4 --lr 5e-5 --epochs 1 \
        --epochs-decay 1 --lambda-l1 100 --save-every 1000 --sample-every 1000 --seed 8 \
        --mixed-precision auto --compile off --input-kind edges --dataset "$NAME"
    fi
    ;;
  region)
    if [ -d "$RUNS/$RUN-v9/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v9"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v7" --data "$DATA" --out "$RUNS/$RUN-v9" \
        --no-gan --hints --hint-propagation 96 --hint-recolour 0.5 --hint-recolour-region \
        --hint-none-share 0.3 --hint-max-dabs 16 --batch-size 4 --lr 5e-5 --epochs 1 \
        --epochs-decay 1 --lambda-l1 100 --save-every 1000 --sample-every 1000 --seed 9 \
        --mixed-precision auto --compile off --input-kind edges --dataset "$NAME"
    fi
    ;;
  commit)
    if [ -d "$RUNS/$RUN-v10/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v10"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v9" --data "$DATA" --out "$RUNS/$RUN-v10" \
        --ndf 16 --patch 70 --hints --hint-propagation 96 --hint-recolour 0.5 \
        --hint-recolour-region --hint-none-share 0.3 --hint-max-dabs 16 --batch-size 4 \
        --lr 1e-4 --epochs 1 --epochs-decay 1 --lambda-l1 100 --save-every 1000 \
        --sample-every 1000 --seed 10 --mixed-precision auto --compile off --input-kind edges \
        --dataset "$NAME"
    fi
    ;;
  bins)
    if [ -d "$RUNS/$RUN-v11/checkpoint" ]; then
      $PY -m train.train --resume "$RUNS/$RUN-v11"
    else
      $PY -m train.train --init-from "$RUNS/$RUN-v9" --data "$DATA" --out "$RUNS/$RUN-v11" \
        --no-gan --colour-bins 24 --lambda-colour-bins 10 --hints --hint-propagation 96 \
        --hint-recolour 0.5 --hint-recolour-region --hint-none-share 0.3 --hint-max-dabs 16 \
        --batch-size 4 --lr 1e-4 --epochs 1 --epochs-decay 2 --lambda-l1 100 --save-every 1000 \
        --sample-every 1000 --seed 11 --mixed-precision auto --compile off --input-kind edges \
        --dataset "$NAME"
    fi
    ;;
  export)
    src="$RUNS/$RUN-v9"
    rm -rf checkpoints/lineart2color
    $PY -m pix2pix.convert "$src" checkpoints/lineart2color --fp16 --input-kind edges \
      --train-size 256 --patch 70 --hints --dataset "$NAME" --license cc-by-sa-4.0 \
      --notes "Line art to colour with colour hints: a dab of colour inside a shape chooses that shape's colour. $RUN: the paper's recipe at ngf 16 (unet_256, 70x70 PatchGAN, cGAN + 100 L1, batch 4, 256 px crops of 286 px, mirroring, 22,360 steps) with colour-hint dabs sampled from the targets, then one epoch of L1 alone for smooth fills ($RUN-l1), then 10 epochs of L1 with dabs on 70% of the examples, up to 16 each ($RUN-v3: 26,260 steps of batch 4), then 11 epochs of L1 with the dabs' colours spread over their shapes up to the lines as 4 more input channels (networks.HintPropagation, 48 steps; $RUN-v4: 28,886 steps of batch 4), then 4 epochs in which half of the dabs had a random colour and their shapes in the target the same colour, the spread lengthened to 96 steps ($RUN-v7: 10,504 steps of batch 4), then 2 epochs in which such a dab's whole closed shape took its colour ($RUN-v9: 5,252 steps of batch 4); its propagation spreads grey dabs too; see docs/RESULTS.md and train/recipes/lineart.sh. Data: OpenMoji (openmoji.org), CC BY-SA 4.0 (designer line art); line art derived from the flat colour fills of Fluent Emoji Flat (Microsoft Corporation), MIT; Twemoji (Twitter), CC BY 4.0; Noto Emoji (Google Inc), Apache 2.0; Emoji One, CC BY 4.0. The weights are shared under the same licence as OpenMoji's data, CC BY-SA 4.0 (share alike); the other sets' licences allow that, with their credits kept here."
    ;;
  report)  # against the previous default model, taken from git (the commit that shipped it)
    for rev in 9175958; do
      if [ ! -f "$RUNS/previous-$rev/checkpoints/lineart2color/model.safetensors" ]; then
        mkdir -p "$RUNS/previous-$rev"
        git archive "$rev" checkpoints/lineart2color | tar -x -C "$RUNS/previous-$rev"
      fi
    done
    $PY -m train.report_colour --data "$DATA" --intro docs/results/colour_intro.md \
      --model "session 11=$RUNS/previous-9175958/checkpoints/lineart2color" \
      --model "recolour (v7, not shipped)=$RUNS/$RUN-v7" \
      --model "session 12 (shipped)=checkpoints/lineart2color"
    $PY -m train.colour_baselines --data "$DATA" --results docs/RESULTS.md  # the no-hint floor
    ;;
  *) echo "usage: $0 data | train | finetune | hints | propagate | recolour | grey | region | commit | bins | export | report" >&2; exit 2 ;;
esac
