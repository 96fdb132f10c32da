#!/usr/bin/env bash
# Sessions per GPU: `antiphon bench` on the Moshi 7B configuration (random bf16 weights), on a lent H200
# (the device tool; carry .carry/wheels: moshi and sphn wheels for the device's Python):
#   bash benchmarks/gpu_sessions.sh 1,8,32,64 SECONDS
set -euo pipefail
sessions=${1:-1,8,32,64}
seconds=${2:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .carry/wheels/*.whl
mkdir -p /tmp/pkg/antiphon
for room in server models client; do ln -sfn "$PWD/$room" /tmp/pkg/antiphon/$room; done
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
python3 -m antiphon.server bench --model moshi-7b --random-weights --device cuda --sessions "$sessions" \
  --seconds "$seconds" --out "${OUT:-benchmarks/results}/gpu_sessions"
