"""Per-slot sampling inside one batched LM step.

moshi's LMGen samples the whole batch with one temperature and top-k. Antiphon gives each slot its own
temperature, top-k and seed: LMGen runs greedy (argmax) and this sampler rewrites each sampling slot's
logits into a one-hot of the token it drew, so LMGen's argmax picks exactly that token while greedy slots
keep their logits untouched (and so match moshi's greedy decoding bit for bit).

Randomness is counter-based: the noise for a slot is a hash of (seed, the slot's step, stream, token id).
A seeded session therefore draws the same tokens whatever else shares its batch, and the step has no host
synchronisation or per-slot generator, so it can be captured in a CUDA graph.
"""

from __future__ import annotations

import torch

from .params import SamplingParams

_MASK32 = 0xFFFFFFFF
# Odd multipliers below 2**31, so that a 32-bit value times one stays inside int64.
_MIX_A = 0x7FEB352D
_MIX_B = 0x5BD1E995
_STREAM_STRIDE = 0x27D4EB2F
_STEP_STRIDE = 0x165667B1


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * _MIX_A) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MIX_B) & _MASK32
    return x ^ (x >> 16)


class SlotSampler:
    """Holds every slot's sampling parameters as device tensors (fixed addresses, CUDA-graph safe)."""

    def __init__(self, batch_size: int, device: torch.device) -> None:
        def zeros(dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(batch_size, dtype=dtype, device=device)

        self.text_temperature = zeros(torch.float32)
        self.text_topk = zeros(torch.long)
        self.text_seed = zeros(torch.long)
        self.audio_temperature = zeros(torch.float32)
        self.audio_topk = zeros(torch.long)
        self.audio_seed = zeros(torch.long)
        self.steps = zeros(torch.long)

    def assign(self, slot: int, params: SamplingParams) -> None:
        self.text_temperature[slot] = params.text_temperature
        self.text_topk[slot] = params.text_topk
        self.text_seed[slot] = params.text_seed & _MASK32
        self.audio_temperature[slot] = params.audio_temperature
        self.audio_topk[slot] = params.audio_topk
        self.audio_seed[slot] = params.audio_seed & _MASK32
        self.steps[slot] = 0

    def advance(self, exec_mask: torch.Tensor) -> None:
        self.steps += exec_mask.to(self.steps.dtype)

    def force_text(self, logits: torch.Tensor) -> None:
        """LMGen's text-logits hook: edits [B, 1, 1, V] logits in place."""
        logits.copy_(self._force(logits, self.text_temperature, self.text_topk, self.text_seed, 0))

    def force_audio(self, logits: torch.Tensor, codebook: int) -> torch.Tensor:
        return self._force(logits, self.audio_temperature, self.audio_topk, self.audio_seed, 1 + codebook)

    def _force(self, logits: torch.Tensor, temperature: torch.Tensor, topk: torch.Tensor,
               seed: torch.Tensor, stream: int) -> torch.Tensor:
        batch, vocab = logits.shape[0], logits.shape[-1]
        flat = logits.reshape(batch, vocab).float()
        drawn = self._draw(flat, temperature, topk, seed, stream)
        one_hot = torch.full_like(flat, float("-inf"))
        one_hot.scatter_(1, drawn[:, None], 0.0)
        sampling = (temperature > 0)[:, None]
        return torch.where(sampling, one_hot.to(logits.dtype), logits.reshape(batch, vocab)).view_as(logits)

    def _draw(self, logits: torch.Tensor, temperature: torch.Tensor, topk: torch.Tensor,
              seed: torch.Tensor, stream: int) -> torch.Tensor:
        batch, vocab = logits.shape
        scaled = logits / temperature.clamp_min(1e-5)[:, None]
        ranked = scaled.sort(dim=-1, descending=True).values
        k = torch.where(topk > 0, topk.clamp(max=vocab), torch.full_like(topk, vocab))
        threshold = ranked.gather(1, (k - 1)[:, None])
        allowed = torch.where(scaled >= threshold, scaled, torch.full_like(scaled, float("-inf")))
        counter = seed ^ (self.steps * _STEP_STRIDE & _MASK32) ^ (stream * _STREAM_STRIDE & _MASK32)
        token_ids = torch.arange(vocab, device=logits.device)
        bits = _mix32(_mix32(counter)[:, None] ^ token_ids[None, :])
        uniform = ((bits >> 8).float() + 0.5) / float(1 << 24)
        gumbel = -torch.log(-torch.log(uniform))
        return (allowed + gumbel).argmax(dim=-1)
