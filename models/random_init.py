"""Random weights that behave like trained ones where it matters for serving.

A freshly built Mimi has all-zero codebooks, so every frame quantizes to the same codes and any test of
the token path proves nothing. Here each codebook in use is filled, stage after stage, with jittered
copies of the vectors that actually reach it when the random encoder hears a varied calibration signal
(what k-means initialisation does in training, without the iterations), so different audio gives
different codes.
"""

from __future__ import annotations

import math

import torch
from moshi.models.compression import MimiModel
from moshi.quantization.core_vq import EuclideanCodebook

_CALIBRATION_SECONDS = 4.0
_CALIBRATION_CLIPS = 8


@torch.no_grad()
def calibrate_random_codebooks(mimi: MimiModel, generator: torch.Generator) -> None:
    signal = _calibration_signal(int(mimi.sample_rate), generator).to(next(mimi.parameters()).device)
    for codebook in _codebooks_in_use(mimi):
        vectors = _inputs_reaching(codebook, mimi, signal)
        size, _ = codebook.embedding_sum.shape
        picks = torch.randint(len(vectors), (size,), generator=generator)
        jitter = torch.randn(size, vectors.shape[1], generator=generator) * vectors.std(0) * 0.3
        entries = vectors[picks] + jitter.to(vectors)
        codebook.embedding_sum.copy_(entries.to(codebook.embedding_sum))
        codebook.cluster_usage.fill_(1.0)
        codebook._initialized.fill_(1.0)
        codebook._embedding = None  # drop the cached normalised codebook
        codebook._cached_initialized = False


def _codebooks_in_use(mimi: MimiModel) -> list[EuclideanCodebook]:
    """The codebooks of the first `mimi.num_codebooks` stages, in the order encoding visits them."""
    quantizer = mimi.quantizer
    stages = [layer._codebook for layer in quantizer.rvq_first.vq.layers]
    stages += [layer._codebook for layer in quantizer.rvq_rest.vq.layers]
    return stages[: mimi.num_codebooks]


def _inputs_reaching(codebook: EuclideanCodebook, mimi: MimiModel, signal: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    quantize = codebook._quantize

    def capture(x: torch.Tensor) -> torch.Tensor:
        captured.append(x.detach().float().cpu())
        return quantize(x)

    codebook._quantize = capture  # type: ignore[method-assign]
    try:
        mimi.encode(signal)
    finally:
        del codebook._quantize
    return torch.cat(captured)


def _calibration_signal(sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """Clips of gliding harmonic tones under noise with a syllable-rate envelope: [clips, 1, samples]."""
    samples = int(_CALIBRATION_SECONDS * sample_rate)
    t = torch.arange(samples) / sample_rate
    clips = []
    for _ in range(_CALIBRATION_CLIPS):
        f0 = 90 + 200 * torch.rand(1, generator=generator)
        glide = 1 + 0.3 * torch.sin(2 * math.pi * 0.7 * t + 6 * torch.rand(1, generator=generator))
        phase = 2 * math.pi * torch.cumsum(f0 * glide, 0) / sample_rate
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * (3 + 3 * torch.rand(1, generator=generator)) * t)
        noise = torch.randn(samples, generator=generator)
        clips.append(0.1 * envelope * (voiced + 0.3 * noise))
    return torch.stack(clips)[:, None, :]
