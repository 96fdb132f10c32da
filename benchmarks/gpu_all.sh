#!/usr/bin/env bash
# Every GPU measurement of the serving engine in one call of the lent H200 (the device tool, carry .carry;
# about nine of its ten minutes), each into its own file under $OUT so that a step that fails leaves the
# others, the most wanted first: greedy parity against moshi's one-session loop with and without the frame
# graphs, the full server's mouth-to-ear latency, the engine beside moshi's modules at 1-64 sessions (full
# context) and at 96 and 128 (1,500-frame context), and one session's frame stage by stage, with frame graphs
# (the default on CUDA) unless the parity run found them differing from moshi (--no-frame-graphs then).
# GIL=1 adds who holds the interpreter lock in the server at 128 sessions (py-spy), when the call has the time.
#   bash benchmarks/gpu_all.sh
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
graphs=()
# the parity run is the first to capture frame graphs: if they fail, the rest measures without them
step parity 180 python3 benchmarks/gpu_parity.py --out "$out/gpu_parity.md" || graphs=(--no-frame-graphs)
step "server sweep" 300 bash benchmarks/gpu_sessions.sh 1,8,32,128 8 gpu_server --server --context-frames 1500 \
  --client-processes 12 "${graphs[@]}"
step "engine sweep" 150 bash benchmarks/gpu_sessions.sh 1,8,32,64 8 gpu_sessions "${graphs[@]}"
step "1,500-frame sweep" 120 bash benchmarks/gpu_sessions.sh 96,128 8 gpu_sessions_1500 --context-frames 1500 \
  "${graphs[@]}"
step "frame profile" 120 python3 benchmarks/frame_profile.py --model moshi-7b --random-weights --device cuda \
  --sessions 1 --frames 50 --out "$out/frame_profile_gpu"
rm -f "$out"/gpu_server-server-*.log
if [[ -n ${GIL:-} ]]; then
  step "GIL profile" 120 bash -c "bash benchmarks/gil_profile.sh 128 12 --model moshi-7b --random-weights \
    --device cuda --context-frames 1500 --client-processes 12 ${graphs[*]} > '$out/gil_profile_gpu.md' 2>&1"
fi
ls -la "$out"
