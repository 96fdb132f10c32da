#!/usr/bin/env bash
# The compiled engine (`--compile`: torch.compile over moshi's streaming pieces, with frame graphs) on a
# lent H200 (the device tool, carry .carry), in parts, each within one call:
#   rows       the engine sweep's one-session row beside moshi's modules, compiled with the model's weights
#              and with int8 LM weights (`--int8-weights`), with Inductor's output code for each first
#              compile (compiled_output_code*.txt, not kept in the repository: which source operations
#              each fused kernel runs);
#   profile    one Moshi 7B session's frame beside the other engines, both compiled ones too, stage by
#              stage, and the int8 row again with the codec's decoder in bfloat16;
#   agreement  the int8 weights' agreement with the model's own;
#   parity     the greedy agreement with moshi's one-session loop (test-small).
# Most of the time goes to compiling, in the first part run: Inductor's kernels are cached under .runs/
# (kept while the machine stays warm), so the parts after it compile little (and log no output code):
# `bash benchmarks/gpu_compiled.sh rows` in a first call, `bash benchmarks/gpu_compiled.sh profile
# agreement` in the next, `parity` when there is time.
#   bash benchmarks/gpu_compiled.sh [PART...]   (default: all four, in this order)
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out TORCHINDUCTOR_CACHE_DIR=$PWD/.runs/inductor
for part in ${*:-rows profile agreement parity}; do
  case $part in
    rows)
      TORCH_LOGS=output_code TORCH_LOGS_OUT=$out/compiled_output_code.txt \
        step "one session" 300 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled --compile
      TORCH_LOGS=output_code TORCH_LOGS_OUT=$out/compiled_output_code_int8.txt \
        step "one session, int8 LM weights" 260 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled_int8 \
        --compile --int8-weights ;;
    profile)
      step "frame profile" 300 python3 benchmarks/frame_profile.py --model moshi-7b --random-weights \
        --device cuda --sessions 1 --frames 50 --compile --int8-weights --out "$out/frame_profile_compiled_gpu"
      step "one session, int8 LM weights, bfloat16 decoder" 120 bash benchmarks/gpu_sessions.sh 1 8 \
        gpu_sessions_compiled_int8_bf16_decoder --compile --int8-weights --decoder-dtype bfloat16 ;;
    agreement)
      step "int8 agreement" 120 python3 benchmarks/int8_agreement.py --model moshi-7b --random-weights \
        --device cuda --seconds 20 --out "$out/int8_agreement_gpu" ;;
    parity)
      step parity 150 python3 benchmarks/gpu_parity.py --compile --out "$out/gpu_parity_compiled.md" ;;
    *)
      echo "unknown part: $part (rows, profile, agreement, parity)" >&2
      exit 2 ;;
  esac
done
ls -la "$out"
