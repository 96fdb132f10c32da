#!/usr/bin/env bash
# Turns what an lm_h200.sh call returned (its lm-*.safetensors parts and run.tar.gz, in RETURNED) into a
# model folder in Kyutai's layout with the shipped codec, ready for `antiphon serve --model` and `antiphon
# eval model`, and refills .carry/init so that the next call goes on from these weights:
#   bash models/train/runs/assemble_lm.sh RETURNED MODEL_FOLDER
set -euo pipefail
returned=$1 model=$2
python=${PYTHON:-.venv/bin/python}
mkdir -p "$model" .carry/init
"$python" -m antiphon.models.train.transfer join "$returned/lm" "$model/model.safetensors"
tar -xzf "$returned/run.tar.gz" -C "$model" --strip-components=2 ./lm/config.json ./lm/tokenizer.model
cp weights/antiphon-small/mimi.safetensors weights/antiphon-small/mimi_config.json "$model/"
# the next call's starting point travels in 8 bits beside the rest of its carry (lm_h200.sh, INIT)
rm -f .carry/init/lm-*.safetensors
"$python" -m antiphon.models.train.transfer split "$model/model.safetensors" .carry/init/lm --int8
cp "$model/tokenizer.model" .carry/init/tokenizer.model
ls -la "$model" .carry/init
