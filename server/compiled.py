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

Compiled kernels round differently from eager ones (fused reductions, fewer intermediate casts), so
greedy tokens can drift from moshi's reference; `benchmarks/gpu_parity.py` reports the agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo

from ..models.loader import LoadedModel

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
        pieces += [(mimi.quantizer, "encode"), (mimi.quantizer, "decode"), *extra]
        self._replaced: list[tuple[Any, str, Callable[..., Any] | None]] = []
        for owner, name in pieces:
            self._replaced.append((owner, name, vars(owner).get(name)))
            setattr(owner, name, torch.compile(getattr(owner, name), backend=backend))

    def restore(self) -> None:
        """Put back what each piece was (the class's method, or the instance's own wrapper)."""
        for owner, name, previous in reversed(self._replaced):
            if previous is None:
                vars(owner).pop(name, None)
            else:
                setattr(owner, name, previous)
        self._replaced = []
