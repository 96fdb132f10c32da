#!/usr/bin/env bash
# Sessions per GPU on a lent H200 (the device tool), the Moshi 7B configuration with random bf16 weights.
# Carry .carry/wheels (moshi, sphn, websockets for the device's Python 3.12) and, for --server,
# .carry/wheels-server (fastapi, starlette, uvicorn, uvloop, pydantic, pydantic-core, typing-inspection,
# annotated-types, annotated-doc, click, opentelemetry-api, importlib-metadata, zipp, anyio, h11, idna,
# typing-extensions: `pip download --no-deps --only-binary=:all: --python-version 3.12 ...`) and
# .carry/lib/libopus.so.0 (Debian's libopus0, which the server's Ogg Opus codec loads); see device_env.sh.
#   bash benchmarks/gpu_sessions.sh SESSIONS SECONDS [NAME] [ANTIPHON-BENCH-OPTIONS...]
# e.g. `gpu_sessions.sh 1,8,32,64 8` (the engine beside moshi's modules), `gpu_sessions.sh 96,128 8
# gpu_sessions_1500 --context-frames 1500`, `gpu_sessions.sh 1,8,32 8 gpu_server --server
# --client-processes 12` (the full server and WebSocket clients).
set -euo pipefail
sessions=${1:-1,8,32,64}
seconds=${2:-8}
name=${3:-gpu_sessions}
shift 3 || shift $#
source benchmarks/device_env.sh
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
python3 -m antiphon.server bench --model moshi-7b --random-weights --device cuda --sessions "$sessions" \
  --seconds "$seconds" --out "${OUT:-benchmarks/results}/$name" "$@"
