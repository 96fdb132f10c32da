#!/usr/bin/env bash
# Trains the small codec on one lent H200 (the device tool), in one or more calls of at most 10 minutes:
#   bash models/train/runs/codec_h200.sh MINUTES [TRAIN-CODEC-OPTIONS...]        (carry: .carry)
# The shipped codec took two calls (runs/README.md): one from scratch, then, with that call's export
# joined into .carry/codec-init/mimi.safetensors,
# `codec_h200.sh 8 --init .carry/codec-init/mimi.safetensors --cooldown 0.3`.
# Setup: device_setup.sh.
# The dataset and the training state stay in .runs/ on the device between calls while it is warm; a call
# that finds a training state resumes it. What comes back: the exported codec, the loss log, the card.
set -euo pipefail
minutes=${1:-7}
shift || true
source models/train/runs/device_setup.sh

if [[ ! -f .runs/data/card.md ]]; then
  time LD_LIBRARY_PATH=$espeak_libs antiphon data --out .runs/data --train 4000 --heldout 200 --workers 16 --shard-size 100 > /dev/null
fi
resume=()
[[ -f .runs/codec/train-state.pt ]] && resume=(--resume .runs/codec/train-state.pt)
antiphon train codec --data .runs/data --out .runs/codec --minutes "$minutes" --batch 64 "${resume[@]}" "$@" \
  2>&1 | tr '\r' '\n' | tail -n 20
cp .runs/codec/mimi_config.json .runs/codec/log.jsonl .runs/data/card.md "$OUT/"
# Files come back at most 16 MB each: the codec travels in parts (join: models/train/transfer.py).
python3 -m antiphon.models.train.transfer split .runs/codec/mimi.safetensors "$OUT/mimi"
tail -n 3 .runs/codec/log.jsonl
