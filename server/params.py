"""A session's sampling parameters (plain data, shared by the protocol and the engine)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """A temperature of 0 means greedy decoding; a top-k of 0 means no top-k cut.

    The defaults are those of Kyutai's Moshi client."""

    text_temperature: float = 0.7
    text_topk: int = 25
    audio_temperature: float = 0.8
    audio_topk: int = 250
    text_seed: int = 0
    audio_seed: int = 0
