"""The LM's linear layers with weights in int8 (`--int8-weights`): half the bytes a step reads.

One session's frame of Moshi 7B is bound by reading the LM's weights: on an H200 the temporal
transformer's matrix products take 3.3 ms of the compiled 11.9 ms frame, about the time its 13 GB of
bfloat16 weights take to read (`benchmarks/results/frame_profile_compiled_gpu.md`). Each output channel's
weights are scaled into int8 (symmetric, one scale a channel) and scaled back in the layer's dtype as
they are read; activations, the KV cache, the embeddings and the codec stay as they were. A layer
computes `linear(x, int8 weight in x's dtype * scale)`, which Inductor (`--compile`, on CUDA) makes, for
one session, one kernel that reads the int8 weight (`server/compiled.py`); eager, or for several
sessions, each call first builds the whole weight, which is slower than not quantizing. The scale goes
on the weight, not on the product: Inductor replaces `linear(x, int8 weight) * scale` with
`_weight_int8pack_mm`, whose kernel crashes on this CPU for the test model's sizes and, on CUDA, gives
each output its own thread reading a whole weight row. The tokens change: their agreement with the
model's own is in `benchmarks/results/int8_agreement*.md`.
"""

from __future__ import annotations

import types

import torch
from moshi.modules.gating import ActivationGating, gating_forward_generic
from torch import nn


class Int8Linear(nn.Linear):
    """A linear layer that keeps its weight in int8 with a scale per output channel. It is an
    `nn.Linear` whose `weight` is rebuilt at each read, so that moshi's attention, which takes its KV
    cache's dtype from its first projection's weight, runs unchanged."""

    def __init__(self, linear: nn.Linear) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        scale = weight.float().abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        self.register_buffer("weight_int8", torch.round(weight.float() / scale[:, None]).to(torch.int8))
        self.register_buffer("weight_scale", scale.to(weight.dtype))
        self.bias = linear.bias

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return self.weight_int8.to(self.weight_scale.dtype) * self.weight_scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def quantize_linears(module: nn.Module) -> int:
    """Replace every `nn.Linear` under `module` by an `Int8Linear`; returns how many were replaced."""
    replaced = 0
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child))
            replaced += 1
        else:
            replaced += quantize_linears(child)
        if isinstance(child, ActivationGating):
            # moshi's gating kernel multiplies by its linears' weights; its generic path calls the layers
            child.forward = types.MethodType(_gating_through_layers, child)  # type: ignore[method-assign]
    return replaced


def _gating_through_layers(gating: ActivationGating, x: torch.Tensor) -> torch.Tensor:
    return gating_forward_generic(gating.linear_in, gating.linear_out, gating.activation, x)
