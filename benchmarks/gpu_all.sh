#!/usr/bin/env bash
# Every GPU measurement of the serving engine in one call of the lent H200 (the device tool, carry .carry;
# about eight of its ten minutes), each into its own file under $OUT so that a step that fails leaves the
# others: the engine beside moshi's modules at 1-64 sessions (full context) and at 96 and 128 (1,500-frame
# context), the full server's mouth-to-ear latency, who holds the GIL in the server at 128 sessions, and
# one session's frame stage by stage.
#   bash benchmarks/gpu_all.sh
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out
bash benchmarks/gpu_sessions.sh 1,8,32,64 8 gpu_sessions || echo "engine sweep failed"
bash benchmarks/gpu_sessions.sh 96,128 8 gpu_sessions_1500 --context-frames 1500 || echo "1,500-frame sweep failed"
bash benchmarks/gpu_sessions.sh 1,8,32,128 8 gpu_server --server --context-frames 1500 --client-processes 12 \
  || echo "server sweep failed"
rm -f "$out"/gpu_server-server-*.log
bash benchmarks/gil_profile.sh 128 12 --model moshi-7b --random-weights --device cuda --context-frames 1500 \
  --client-processes 12 > "$out/gil_profile_gpu.md" 2>&1 || echo "GIL profile failed"
python3 benchmarks/frame_profile.py --model moshi-7b --random-weights --device cuda --sessions 1 --frames 50 \
  --out "$out/frame_profile_gpu" > /dev/null || echo "frame profile failed"
ls -la "$out"
