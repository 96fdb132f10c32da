#!/usr/bin/env bash
# Trains the default LM and its audio-only ablation side by side on one lent H200 (the device tool):
#   bash models/train/runs/lm_h200.sh UNTIL_SECONDS CONVERSATIONS [TRAIN-LM-OPTIONS...]   (carry: .carry)
# Training stops UNTIL_SECONDS after the command starts (the device ends a command at 600 s), leaving
# time to pack the results. A first call generates CONVERSATIONS conversations (seed 0) and the held-out
# split, trains the tokenizer, tokenizes with the shipped codec (weights/antiphon-small) and starts both
# runs; a call that finds them in .runs/ (the device keeps ignored files while it is warm) resumes both.
# Meanwhile `antiphon train lm-data` generates and tokenizes further conversations (seeds 1, 2, ...) on
# the CPUs, which both runs pick up as they arrive, so that they see fresh conversations rather than
# epochs of the same ones. Both runs read one set of token files and share the GPU for the same
# wall-clock budget. Run 1 (runs/README.md) ran an earlier form of this recipe, without the supply:
#   lm_h200.sh 530 12000 --cooldown 0.5
# What comes back: the default model's LM weights in float16 parts, the ablation's in int8 parts (the
# device returns 64 MB at most; models/train/transfer.py joins both), and a tarball with the tokenizer,
# both loss logs and the data card. Setup: device_setup.sh.
# To go on from an earlier session's run (the device keeps nothing once it goes cold), put its returned
# parts in .carry/init (lm-*.safetensors, ablation-*.safetensors; the LM's re-split in int8 so that they
# travel: assemble_lm.sh does it for the LM) and set INIT=.carry/init: fresh runs then start from those
# weights with fresh optimizers. The parts and the recipe's other carry do not fit one call's
# 64 MiB: carry .carry/init in a first call (command `true`), then, while the machine is warm, the rest
# (.carry/debs, .carry/lib, .carry/wheels) in this one; the device keeps .carry/init between the two.
# .carry/init also holds the earlier run's tokenizer.model, which the new runs keep instead of training
# one, so that the weights read the ids they were trained on.
# ABLATION=0 trains the LM alone, with the whole GPU (its weights go on from INIT as above).
# STEP_TIME=32,64 first times a training step at those batch sizes, the GPU to itself, and lists where a
# step waits for the device (lm_step_time.py; STEP_MODES=eager,captured times `--cuda-graph` too, after
# checking it against the eager step, and STEP_MODES=eager,compiled `--compile`).
set -euo pipefail
until_seconds=${1:-520}
conversations=${2:-12000}
shift 2 || true
source models/train/runs/device_setup.sh
runs=(lm)
[[ ${ABLATION:-1} == 1 ]] && runs+=(ablation)

if [[ -f .runs/lm/train-state.pt && ( ${runs[*]} != *ablation* || -f .runs/ablation/train-state.pt ) ]]; then
  lm_start=(--resume .runs/lm/train-state.pt)
  ablation_start=(--resume .runs/ablation/train-state.pt)
else
  rm -rf .runs
  lm_start=() ablation_start=()
  if [[ -n ${INIT:-} ]]; then
    mkdir -p .runs/lm .runs/init
    cp "$INIT/tokenizer.model" .runs/lm/tokenizer.model
    for run in "${runs[@]}"; do
      python3 -m antiphon.models.train.transfer join "$INIT/$run" ".runs/init/$run.safetensors"
    done
    lm_start=(--init .runs/init/lm.safetensors) ablation_start=(--init .runs/init/ablation.safetensors)
  fi
  time LD_LIBRARY_PATH=$espeak_libs antiphon data --out .runs/data --train "$conversations" --heldout "${HELDOUT:-300}" \
    --workers 16 --shard-size 100 > /dev/null
  time antiphon train lm --data .runs/data --codec weights/antiphon-small --out .runs/lm --steps 0 2>&1 | tail -n 20
fi
if [[ -n ${STEP_TIME:-} ]]; then  # e.g. STEP_TIME=32,64: a step's time per batch size, before the supply starts
  modes=${STEP_MODES:-eager} check=()
  [[ $modes == *captured* ]] && check=(--graph-check)  # the captured step against the eager one first
  python3 models/train/runs/lm_step_time.py --batches "$STEP_TIME" --modes "$modes" "${check[@]}" --sync-debug -- \
    --data .runs/data --codec weights/antiphon-small --out .runs/lm "$@" | tee "$OUT/step-time.md"
fi
minutes=$(python3 -c "print(max(0.5, ($until_seconds - $SECONDS) / 60))")
echo "training ${runs[*]} for $minutes minutes"
LD_LIBRARY_PATH=$espeak_libs antiphon train lm-data --tokens .runs/lm --codec weights/antiphon-small --work .runs/supply \
  --chunk "${SUPPLY_CHUNK:-3000}" --workers 12 --minutes "$(python3 -c "print($minutes - 1)")" > .runs/supply.out 2>&1 &
supply=$!
antiphon train lm --data .runs/data --codec weights/antiphon-small --out .runs/lm --minutes "$minutes" \
  "${lm_start[@]}" "$@" > .runs/lm.out 2>&1 &
trainers=($!)
if [[ ${runs[*]} == *ablation* ]]; then
  antiphon train lm --data .runs/data --codec weights/antiphon-small --out .runs/ablation --tokens .runs/lm \
    --minutes "$minutes" --no-text "${ablation_start[@]}" "$@" > .runs/ablation.out 2>&1 &
  trainers+=($!)
fi
wait "${trainers[@]}"
kill $supply 2> /dev/null || true  # a chunk it had not finished is left as a .partial file, never read
grep -c chunk .runs/supply.out || true
for run in "${runs[@]}"; do tr '\r' '\n' < .runs/$run.out | grep -v '^$' | tail -n 3; tail -n 2 .runs/$run/log.jsonl; done
rm -rf .runs/pack && mkdir -p .runs/pack/lm
cp .runs/lm/log.jsonl .runs/lm/tokenizer.model .runs/lm/model/config.json .runs/pack/lm/
cp .runs/data/card.md .runs/pack/
python3 -m antiphon.models.train.transfer split .runs/lm/model/model.safetensors "$OUT/lm"
if [[ ${runs[*]} == *ablation* ]]; then
  mkdir -p .runs/pack/ablation && cp .runs/ablation/log.jsonl .runs/pack/ablation/
  python3 -m antiphon.models.train.transfer split .runs/ablation/model/model.safetensors "$OUT/ablation" --int8
fi
tar -czf "$OUT/run.tar.gz" -C .runs/pack .
ls -la "$OUT"
