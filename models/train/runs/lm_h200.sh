#!/usr/bin/env bash
# Trains the default LM and its audio-only ablation side by side on one lent H200 (the device tool), in
# one call of at most 10 minutes:
#   bash models/train/runs/lm_h200.sh MINUTES TRAIN CONVERSATIONS        (carry: .carry)
# .carry/codec holds the shipped codec (mimi.safetensors, mimi_config.json); setup: device_setup.sh.
# The two runs share the dataset, tokenizer and tokens, and the GPU, for the same wall-clock budget.
# What comes back: the default model's LM weights in float16 parts, the ablation's in int8 parts (the
# device returns 64 MB at most; models/train/transfer.py joins both), and a tarball with the tokenizer,
# both loss logs and the data card.
set -euo pipefail
minutes=${1:-6}
conversations=${2:-12000}
source models/train/runs/device_setup.sh

time LD_LIBRARY_PATH=$espeak_libs antiphon data --out .runs/data --train "$conversations" --heldout 300 \
  --workers 16 --shard-size 100 > /dev/null
time antiphon train lm --data .runs/data --codec .carry/codec --out .runs/lm --steps 0 2>&1 | tail -n 1
mkdir -p .runs/ablation
cp .runs/lm/tokens-*.npz .runs/lm/tokenizer.model .runs/ablation/
antiphon train lm --data .runs/data --codec .carry/codec --out .runs/lm --minutes "$minutes" \
  > .runs/lm.out 2>&1 &
antiphon train lm --data .runs/data --codec .carry/codec --out .runs/ablation --minutes "$minutes" --no-text \
  > .runs/ablation.out 2>&1 &
wait
for run in lm ablation; do tr '\r' '\n' < .runs/$run.out | grep -v '^$' | tail -n 2; tail -n 1 .runs/$run/log.jsonl; done
mkdir -p .runs/pack/lm .runs/pack/ablation
cp .runs/lm/log.jsonl .runs/lm/tokenizer.model .runs/lm/model/config.json .runs/pack/lm/
cp .runs/ablation/log.jsonl .runs/pack/ablation/
cp .runs/data/card.md .runs/pack/
tar -czf "$OUT/run.tar.gz" -C .runs/pack .
python3 -m antiphon.models.train.transfer split .runs/lm/model/model.safetensors "$OUT/lm"
python3 -m antiphon.models.train.transfer split .runs/ablation/model/model.safetensors "$OUT/ablation" --int8
ls -la "$OUT"
