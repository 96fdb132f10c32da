#!/usr/bin/env bash
# The compiled engine (`--compile`: torch.compile over moshi's streaming pieces, with frame graphs) on a
# lent H200 (the device tool, carry .carry), in parts, each within one call:
#   profile    one Moshi 7B session's frame beside the other engines, compiled with the model's weights and
#              with int8 LM weights (`--int8-weights`), stage by stage, with Inductor's output code for
#              both compiles (compiled_output_code.txt, not kept in the repository: which source
#              operations each fused kernel runs);
#   rows       the engine sweep's one-session row beside moshi's modules: compiled, with int8 LM weights,
#              and also with the codec's decoder in bfloat16;
#   agreement  the int8 weights' agreement with the model's own;
#   parity     the greedy agreement with moshi's one-session loop (test-small).
# Most of the time goes to compiling. Inductor's kernels are cached under .runs/ (kept while the machine
# stays warm), so the parts after the first compile little (and log no output code): `bash
# benchmarks/gpu_compiled.sh profile` in a first call, `bash benchmarks/gpu_compiled.sh rows agreement
# parity` in the next.
#   bash benchmarks/gpu_compiled.sh [PART...]   (default: all four, in this order)
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out TORCHINDUCTOR_CACHE_DIR=$PWD/.runs/inductor
for part in ${*:-profile rows agreement parity}; do
  case $part in
    profile)
      # Inductor's generated code for the first compile, where each kernel names its source ops
      TORCH_LOGS=output_code TORCH_LOGS_OUT=$out/compiled_output_code.txt \
        step "frame profile" 560 python3 benchmarks/frame_profile.py --model moshi-7b --random-weights \
        --device cuda --sessions 1 --frames 50 --compile --int8-weights --out "$out/frame_profile_compiled_gpu" ;;
    rows)
      step "one session" 200 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled --compile
      step "one session, int8 LM weights" 200 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled_int8 \
        --compile --int8-weights
      step "one session, int8 LM weights, bfloat16 decoder" 150 bash benchmarks/gpu_sessions.sh 1 8 \
        gpu_sessions_compiled_int8_bf16_decoder --compile --int8-weights --decoder-dtype bfloat16 ;;
    agreement)
      step "int8 agreement" 120 python3 benchmarks/int8_agreement.py --model moshi-7b --random-weights \
        --device cuda --seconds 20 --out "$out/int8_agreement_gpu" ;;
    parity)
      step parity 150 python3 benchmarks/gpu_parity.py --compile --out "$out/gpu_parity_compiled.md" ;;
    *)
      echo "unknown part: $part (profile, rows, agreement, parity)" >&2
      exit 2 ;;
  esac
done
ls -la "$out"
