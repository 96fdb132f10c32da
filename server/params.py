"""A session's sampling parameters (plain data, shared by the protocol and the engine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


# The keys of a Kyutai config.json's `lm_gen_config` that name sampling parameters.
_LM_GEN_KEYS = {"temp_text": "text_temperature", "top_k_text": "text_topk", "temp": "audio_temperature",
                "top_k": "audio_topk"}


def defaults_from_lm_gen_config(lm_gen_config: dict[str, Any]) -> SamplingParams:
    """A model folder's own sampling defaults (config.json's `lm_gen_config`), Kyutai's elsewhere."""
    chosen = {ours: lm_gen_config[theirs] for theirs, ours in _LM_GEN_KEYS.items() if theirs in lm_gen_config}
    return SamplingParams(**chosen)
