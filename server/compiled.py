"""torch.compile over moshi's streaming modules (opt-in: `--compile`): fewer, fused kernels a frame.

One session's frame of Moshi 7B runs about 6,200 kernels on an H200 (`benchmarks/results/
frame_profile_gpu.md`), most of them elementwise operations of a microsecond in the attention layers'
KV-cache and mask bookkeeping, the codec's transformers and the sampler; the device, not the host, sets
the frame's time. Compiling the step's pieces lets Inductor fuse them. The pieces are moshi's own
forwards, traced as they are: the temporal transformer with its embeddings and text head, the depth
transformer's step for each codebook (with the per-slot sampler), and each part of Mimi. Dynamo traces
their streaming state (in-place updates of the KV caches and offsets) without graph breaks; the Python
step counters they keep (`offset_cpu`) are made symbolic rather than specialised, so that a new step
does not recompile. The depth transformer compiles once per codebook, since each has its own weights.

Each attention layer's KV-cache write is replaced by one into the cache tensor itself
(`_complete_kv_in_place`): for moshi's writes into its key and value views, Inductor copies the whole
cache each step.

Fused kernels would keep intermediates in float32 where eager rounds each operation's result to
bfloat16; Inductor is told to emulate eager's roundings, and the quantizer's codeword search stays eager.
On a CPU the compiled bfloat16 engine then decodes greedy tokens as the eager one does; on an H200 it
still does not (`benchmarks/gpu_parity.py --compile`: the first other token within 4-14 steps), so
`--compile` stays off by default.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo
import torch._inductor.config
from moshi.modules.transformer import KVCacheResult, StreamingMultiheadAttention

from ..models.int8_weights import Int8Linear
from ..models.loader import LoadedModel

# Inductor's settings that make its kernels round as eager's do: a fused kernel keeps intermediates in
# float32 where eager rounds each operation's result to the model's dtype, and Triton's division is
# approximate where eager's rounds to nearest (the division setting's name differs between torch releases).
_EAGER_NUMERICS = ("emulate_precision_casts", "eager_numerics.division_rounding", "emulate_divison_rounding")

# One graph per codebook of the depth transformer (Moshi: 8) and per stream of the sampler, with room.
_CACHE_SIZE = 32


class CompiledPieces:
    """Replaces the pieces' methods with compiled ones on the model's modules, until `restore`.

    Must be applied before the engine enters streaming: LMGen binds `forward_text` when it does."""

    def __init__(self, model: LoadedModel, extra: list[tuple[Any, str]],
                 backend: str | Callable[..., Any] = "inductor") -> None:
        torch._dynamo.config.allow_unspec_int_on_nn_module = True
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, _CACHE_SIZE)
        lm, mimi = model.lm, model.mimi
        pieces: list[tuple[Any, str]] = [(lm, "forward_text"), (lm, "forward_depformer")]
        pieces += [(getattr(mimi, name), "forward") for name in ("encoder", "encoder_transformer", "downsample",
                                                                 "upsample", "decoder_transformer", "decoder")
                   if getattr(mimi, name, None) is not None]
        # The quantizer's encode stays eager: its nearest-codeword search (cdist, argmin) as Inductor
        # decomposes it rounds differently in bfloat16, which changes codes at near ties.
        pieces += [(mimi.quantizer, "decode"), *extra]
        options = _eager_numerics() if backend == "inductor" else None
        lm_options = _int8_matmul_options(lm, options)
        self._replaced: list[tuple[Any, str, Callable[..., Any] | None]] = []
        for owner, name in pieces:
            piece_options = lm_options if owner is lm else options
            self._replace(owner, name, torch.compile(getattr(owner, name), backend=backend, options=piece_options))
        for module in [*lm.modules(), *mimi.modules()]:
            if isinstance(module, StreamingMultiheadAttention) and not module.cross_attention:
                self._replace(module, "_complete_kv", types.MethodType(_complete_kv_in_place, module))

    def _replace(self, owner: Any, name: str, replacement: Callable[..., Any]) -> None:
        self._replaced.append((owner, name, vars(owner).get(name)))
        setattr(owner, name, replacement)

    def restore(self) -> None:
        """Put back what each piece was (the class's method, or the instance's own wrapper)."""
        for owner, name, previous in reversed(self._replaced):
            if previous is None:
                vars(owner).pop(name, None)
            else:
                setattr(owner, name, previous)
        self._replaced = []


def _eager_numerics() -> dict[str, bool]:
    """The settings of `_EAGER_NUMERICS` that this torch's Inductor has, all on."""
    known = torch._inductor.config.get_config_copy()
    return {name: True for name in _EAGER_NUMERICS if name in known}


def _int8_matmul_options(lm: torch.nn.Module, options: dict[str, bool] | None) -> dict[str, bool] | None:
    """The LM's options: on CUDA, with int8 linear weights (`--int8-weights`), coordinate-descent tuning,
    under which Inductor computes a product with one row (one session) as a multiply and a sum, one
    kernel that converts each int8 weight as it reads it; otherwise cuBLAS's product would read the weight
    converted and written out beforehand, more bytes than not quantizing. (The first form, which scaled
    the product and let Inductor choose its matrix-product templates, took 76 ms a tick for one Moshi 7B
    session on an H200: `benchmarks/results/gpu_sessions_compiled_int8_first_form.md`.)"""
    on_cuda = next(lm.parameters()).device.type == "cuda"
    if options is None or not on_cuda or not any(isinstance(module, Int8Linear) for module in lm.modules()):
        return options
    return {**options, "coordinate_descent_tuning": True}


def _complete_kv_in_place(attention: StreamingMultiheadAttention, k: torch.Tensor,
                          v: torch.Tensor) -> KVCacheResult:
    """moshi's `_complete_kv` and `RingKVCache.complete`, with the step's keys and values written into the
    cache tensor itself rather than into each of its key and value views. The result is the same.

    Inductor, given moshi's writes into the views, copies the whole cache back each step: the compiled
    Moshi 7B frame on an H200 ran 80 whole-buffer copies (1.8 ms), one per attention call (32 temporal
    layers, 6 depth layers x 8 codebooks). So both writes go into the cache tensor itself, not a view of
    it: an index copy where all sessions share one ring position (the depth transformer), which Inductor
    on an H200 made an in-place write of the new keys and values alone, and an index put by (key or value,
    session, head, ring position) where each has its own (the temporal transformer). Into a view, a
    scatter (as moshi's) or an index put into a permuted view, Inductor on an H200 still copied the
    layer's whole cache to a new buffer and back each step: two 22 µs kernels a layer, 1.4 ms a frame."""
    state = attention._streaming_state
    if state is None or state.kv_cache is None:
        return KVCacheResult.from_kv(k, v)
    cache = state.kv_cache
    batch, heads, steps, _ = k.shape
    end_offset = cache.end_offset
    slots = (torch.arange(steps, device=end_offset.device, dtype=end_offset.dtype)
             + end_offset.view(-1, 1)) % cache.capacity
    if cache.respect_exec_mask:
        # the cache is [key or value, session, head, slot, dim]: one index per leading dimension, broadcast
        key_or_value = torch.arange(2, device=slots.device).view(2, 1, 1, 1)
        sessions = torch.arange(batch, device=slots.device).view(1, batch, 1, 1)
        head_indexes = torch.arange(heads, device=slots.device).view(1, 1, heads, 1)
        cache.cache.index_put_((key_or_value, sessions, head_indexes, slots.view(1, batch, 1, steps)),
                               torch.stack([k, v]))
    else:
        cache.cache.index_copy_(3, slots[0], torch.stack([k, v]))
    # the positions each cache slot holds, -1 where empty, and the new end offset: as moshi computes them
    indexes = torch.arange(cache.capacity, device=end_offset.device, dtype=torch.long)
    last_offset = end_offset.view(-1, 1) + steps - 1
    delta = indexes - last_offset % cache.capacity
    positions = torch.where(delta <= 0, last_offset + delta, last_offset + delta - cache.capacity)
    if cache.respect_exec_mask:
        end_offset[:] = torch.where(state.exec_mask, end_offset + steps, end_offset)
    else:
        end_offset.add_(steps)
    positions = torch.where(indexes >= end_offset.view(-1, 1), torch.full_like(positions, -1), positions)
    return KVCacheResult(cache.cache[0], cache.cache[1], positions)
