"""CUDA graphs over the engine's device work, two a frame instead of moshi's several with Python between.

moshi graphs its pieces (the temporal transformer, the depth transformer, Mimi's encoder, decoder and
transformers) with `CUDAGraphed`; the glue between them (LMGen's cache bookkeeping, sampling, exec masks,
the codec's quantizer) runs eagerly, hundreds of small launches from Python each frame: the device waits
between them (one Moshi 7B session's frame takes 19.6 ms that way and 14.4 ms as two graphs,
`benchmarks/results/frame_profile_gpu.md`), and in a server each launch takes the interpreter lock back
from the sockets' thread. The engine instead wraps whole stages of its step in moshi's own `CUDAGraphed`,
under which moshi's graphed pieces run directly and are captured into the outer graph.

A graph replays the kernels it captured on the tensors it captured, so the streaming state must stay
at fixed addresses (`streaming_state.StatePinning`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moshi.utils.compile import CUDAGraphed

from .streaming_state import StatePinning


def graphed(function: Callable[..., Any], pinning: StatePinning, enabled: bool,
            eager_steps: int = 1) -> Callable[..., Any]:
    """`function` (tensors in, tensors out) as one CUDA graph when enabled; called directly otherwise.

    moshi's `CUDAGraphed` runs it `eager_steps` times eagerly, captures it on the next call and replays
    it after, copying each call's tensor arguments into the captured ones. Pinning only matters to
    replays, so the direct call goes without it."""
    if not enabled:
        return function
    return CUDAGraphed(pinning.wrap(function), warmup_steps=eager_steps)
