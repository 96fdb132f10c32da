"""The codec's decoder in another dtype than float32: the agent's audio from the same tokens.

Mimi's decoder turns the agent's audio tokens into sound and feeds nothing back, so running it in
bfloat16 changes no token of any stream, only the audio, by rounding (42.1 dB SNR against float32 on the
shipped codec, `benchmarks/results/decoder_dtype.md`). Its encoder and quantizer stay in float32: in
bfloat16 they change the user's tokens (17 % of the first codebook's on the shipped codec, 86 % of the
last's).
"""

from __future__ import annotations

import torch
from moshi.models.compression import MimiModel

DECODING_MODULES = ("upsample", "decoder_transformer", "decoder")
DECODER_DTYPES = ("float32", "bfloat16")  # the choices of serve's and bench's --decoder-dtype


def run_decoder_in(mimi: MimiModel, dtype: torch.dtype) -> None:
    """Cast Mimi's decoding modules to `dtype` and hand them the quantizer's latents in it."""
    for name in DECODING_MODULES:
        module = getattr(mimi, name, None)
        if module is not None:
            module.to(dtype)
    # looked up at each call, so that a compiled quantizer decode (`--compile`) is the one used
    mimi.decode_latent = lambda codes: mimi.quantizer.decode(codes).to(dtype)  # type: ignore[method-assign]
