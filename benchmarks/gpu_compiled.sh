#!/usr/bin/env bash
# The compiled engine (`--compile`: torch.compile over moshi's streaming pieces, with frame graphs) on a
# lent H200 (the device tool, carry .carry), in one call: the engine sweep's one-session row beside moshi's
# modules, again with the LM's weights in int8 (`--int8-weights`), then also with the codec's decoder in
# bfloat16; one Moshi 7B session's frame stage by stage beside the other engines, with Inductor's output
# code for it (compiled_output_code.txt, not kept in the repository: which source operations each fused
# kernel runs); the int8 weights' agreement with the model's own; and the greedy agreement with moshi's
# one-session loop (test-small). More than 600 s in all, most of it compiling; Inductor's kernels are
# cached under .runs/ (kept while the machine stays warm), so a second call compiles little (and logs no
# output code) and finishes what a first one ran out of time for.
#   bash benchmarks/gpu_compiled.sh
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out TORCHINDUCTOR_CACHE_DIR=$PWD/.runs/inductor
step "one session" 330 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled --compile
step "one session, int8 LM weights" 240 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled_int8 \
  --compile --int8-weights
step "one session, int8 LM weights, bfloat16 decoder" 120 bash benchmarks/gpu_sessions.sh 1 8 \
  gpu_sessions_compiled_int8_bf16_decoder --compile --int8-weights --decoder-dtype bfloat16
# Inductor's generated code for the frame profile's first compile, where each kernel names its source ops
TORCH_LOGS=output_code TORCH_LOGS_OUT=$out/compiled_output_code.txt \
  step "frame profile" 240 python3 benchmarks/frame_profile.py --model moshi-7b --random-weights --device cuda \
  --sessions 1 --frames 50 --compile --out "$out/frame_profile_compiled_gpu"
step "int8 agreement" 120 python3 benchmarks/int8_agreement.py --model moshi-7b --random-weights --device cuda \
  --seconds 20 --out "$out/int8_agreement_gpu"
step parity 150 python3 benchmarks/gpu_parity.py --compile --out "$out/gpu_parity_compiled.md"
ls -la "$out"
