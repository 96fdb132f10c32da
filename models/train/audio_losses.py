"""Reconstruction losses for codec training (multi-scale log-mel distance, waveform L1), and the distances
that evaluations report between a reconstruction and its original (mel distance, SNR)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney-style triangular filters on the HTK mel scale: [n_mels, n_fft // 2 + 1]."""
    def to_mel(hz: torch.Tensor) -> torch.Tensor:
        return 2595 * torch.log10(1 + hz / 700)

    def to_hz(mel: torch.Tensor) -> torch.Tensor:
        return 700 * (10 ** (mel / 2595) - 1)

    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(torch.linspace(to_mel(torch.tensor(0.0)), to_mel(torch.tensor(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    filters = torch.clamp(torch.minimum(rising, falling), min=0)
    return filters * (2 / (upper - lower))  # equal area


class MultiScaleMel(nn.Module):
    """Mean over scales of L1 between log-mel spectrograms (and between mel magnitudes)."""

    def __init__(self, sample_rate: int = 24000, scales: tuple[int, ...] = (256, 512, 1024, 2048),
                 n_mels: int = 64) -> None:
        super().__init__()
        self.scales = scales
        for n_fft in scales:
            self.register_buffer(f"mel_{n_fft}", mel_filterbank(sample_rate, n_fft, min(n_mels, n_fft // 8)))
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft))

    def mel(self, audio: torch.Tensor, n_fft: int) -> torch.Tensor:
        spectrum = torch.stft(audio.reshape(-1, audio.shape[-1]).float(), n_fft, hop_length=n_fft // 4,
                              window=getattr(self, f"window_{n_fft}"), return_complex=True).abs()
        return getattr(self, f"mel_{n_fft}") @ spectrum

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = predicted.new_zeros(())
        for n_fft in self.scales:
            got, want = self.mel(predicted, n_fft), self.mel(target, n_fft)
            total = total + (torch.log(got + 1e-5) - torch.log(want + 1e-5)).abs().mean()
            total = total + (got - want).abs().mean()
        return total / len(self.scales)


def mel_distance_db(predicted: torch.Tensor, target: torch.Tensor, sample_rate: int = 24000) -> float:
    """Evaluation figure: mean absolute difference of 80-band mel magnitudes in dB (1024-point STFT)."""
    mel = MultiScaleMel(sample_rate, scales=(1024,), n_mels=80).to(predicted.device)
    got, want = mel.mel(predicted, 1024), mel.mel(target, 1024)
    return float((20 * (torch.log10(got + 1e-5) - torch.log10(want + 1e-5))).abs().mean())


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """How close `other` is to `reference`: the signal-to-noise ratio of their difference, in dB."""
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((reference - other) ** 2)))
