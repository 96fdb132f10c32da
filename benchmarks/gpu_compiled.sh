#!/usr/bin/env bash
# The compiled engine (`--compile`: torch.compile over moshi's streaming pieces, with frame graphs) on a
# lent H200 (the device tool, carry .carry), in parts:
#   compiled   the engine sweep's one-session row beside moshi's modules, compiled with the model's weights;
#   int8       the same row with int8 LM weights (`--int8-weights`);
#   profile    one Moshi 7B session's frame beside the other engines, both compiled ones too, stage by stage;
#   decoder    the int8 row again with the codec's decoder in bfloat16;
#   agreement  the int8 weights' agreement with the model's own;
#   parity     the greedy agreement with moshi's one-session loop (test-small).
# Compiling takes most of a part's time on a fresh machine: the int8 row took 510 s of its call (its
# coordinate-descent tuning times each kernel's candidate forms), the compiled row more than 300 s. So
# each of the first four parts is one device call; Inductor's kernels are cached under .runs/ while the
# machine stays warm, which shortens the parts after one that compiled the same pieces. OUTPUT_CODE=1 logs
# Inductor's output code for the compiled and int8 rows (compiled_output_code*.txt, not kept in the
# repository: which source operations each fused kernel runs), which lengthens their compile.
#   bash benchmarks/gpu_compiled.sh PART...   (e.g. `int8`, then `profile` in the next call)
set -uo pipefail
out=${OUT:-benchmarks/results}
source benchmarks/device_env.sh
export OUT=$out TORCHINDUCTOR_CACHE_DIR=$PWD/.runs/inductor
with_output_code() {  # SUFFIX COMMAND...: COMMAND, logging Inductor's output code when OUTPUT_CODE=1
  local suffix=$1
  shift
  if [[ ${OUTPUT_CODE:-0} == 1 ]]; then
    TORCH_LOGS=output_code TORCH_LOGS_OUT=$out/compiled_output_code$suffix.txt "$@"
  else
    "$@"
  fi
}
for part in "$@"; do
  case $part in
    compiled)
      with_output_code "" step "one session" 560 bash benchmarks/gpu_sessions.sh 1 8 gpu_sessions_compiled \
        --compile ;;
    int8)
      with_output_code _int8 step "one session, int8 LM weights" 560 bash benchmarks/gpu_sessions.sh 1 8 \
        gpu_sessions_compiled_int8 --compile --int8-weights ;;
    profile)
      step "frame profile" 560 python3 benchmarks/frame_profile.py --model moshi-7b --random-weights \
        --device cuda --sessions 1 --frames 50 --compile --int8-weights --out "$out/frame_profile_compiled_gpu" ;;
    decoder)
      step "one session, int8 LM weights, bfloat16 decoder" 560 bash benchmarks/gpu_sessions.sh 1 8 \
        gpu_sessions_compiled_int8_bf16_decoder --compile --int8-weights --decoder-dtype bfloat16 ;;
    agreement)
      step "int8 agreement" 120 python3 benchmarks/int8_agreement.py --model moshi-7b --random-weights \
        --device cuda --seconds 20 --out "$out/int8_agreement_gpu" ;;
    parity)
      step parity 150 python3 benchmarks/gpu_parity.py --compile --out "$out/gpu_parity_compiled.md" ;;
    *)
      echo "unknown part: $part (compiled, int8, profile, decoder, agreement, parity)" >&2
      exit 2 ;;
  esac
done
ls -la "$out"
