"""Built-in model configurations, written as Kyutai writes them in a model repository's config.json.

`moshi-7b` is Kyutai's Moshi 7B (the LM configuration of kyutai/moshiko-pytorch-bf16 and Mimi's own
configuration). `test-small` keeps Moshi's stream layout (one text stream, 8 agent and 8 user audio
codebooks of 2048 entries, Moshi's delays, 24 kHz audio at 12.5 frames/s) at a size that steps several
sessions in real time on two CPU cores.
"""

from __future__ import annotations

import copy
from typing import Any

from moshi.models import loaders

MOSHI_7B_LM: dict[str, Any] = {
    **loaders._lm_kwargs,
    "moshi_name": loaders.MOSHI_NAME,
    "mimi_name": loaders.MIMI_NAME,
    "tokenizer_name": loaders.TEXT_TOKENIZER_NAME,
}
MOSHI_7B_MIMI: dict[str, Any] = loaders._mimi_config

# Moshi's delays: text and the first (semantic) codebook of each side at 0, the other codebooks at 1.
_MOSHI_DELAYS = [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]

TEST_SMALL_LM: dict[str, Any] = {
    "dim": 128,
    "text_card": 1000,
    "existing_text_padding_id": 3,
    "n_q": 16,
    "dep_q": 8,
    "card": 2048,
    "num_heads": 4,
    "num_layers": 2,
    "hidden_scale": 2,
    "causal": True,
    "layer_scale": None,
    "context": 250,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 64,
    "depformer_dim_feedforward": 128,
    "depformer_num_heads": 2,
    "depformer_num_layers": 1,
    "depformer_layer_scale": None,
    "depformer_multi_linear": True,
    "depformer_context": 8,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "delays": _MOSHI_DELAYS,
    "moshi_name": "model.safetensors",
    "mimi_name": "mimi.safetensors",
    "mimi_config_name": "mimi_config.json",
    "tokenizer_name": "tokenizer.model",
}

TEST_SMALL_MIMI: dict[str, Any] = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {
        **loaders._seanet_kwargs,
        "dimension": 64,
        "n_filters": 8,
    },
    "quantizer": {
        "dimension": 32,
        "n_q": 8,
        "bins": 2048,
        "input_dimension": 64,
        "output_dimension": 64,
    },
    "transformer": {
        **loaders._transformer_kwargs,
        "d_model": 64,
        "num_heads": 2,
        "num_layers": 1,
        "dim_feedforward": 128,
        "input_dimension": 64,
        "output_dimensions": [64],
    },
}

# The codec of the shipped default model: Mimi's layout (SEANet 8-6-5-4, a transformer on each side,
# split RVQ of 8 x 2048 entries at 12.5 Hz) at 4.5 M parameters, 13 ms a frame on one CPU core.
ANTIPHON_SMALL_MIMI: dict[str, Any] = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {**loaders._seanet_kwargs, "dimension": 128, "n_filters": 24},
    "quantizer": {"dimension": 64, "n_q": 8, "bins": 2048, "input_dimension": 128, "output_dimension": 128},
    "transformer": {
        **loaders._transformer_kwargs,
        "d_model": 128,
        "num_heads": 4,
        "num_layers": 2,
        "dim_feedforward": 512,
        "input_dimension": 128,
        "output_dimensions": [128],
    },
}

# The LM of the shipped default model: Moshi's stream layout and delays at 21 M parameters. The depth
# transformer keeps two weight sets (semantic codebook, acoustic codebooks) instead of one per codebook,
# and the temporal transformer is shallow, so that two sessions step in real time on two CPU cores.
ANTIPHON_SMALL_LM: dict[str, Any] = {
    **TEST_SMALL_LM,
    "dim": 256,
    "text_card": 256,
    "num_heads": 4,
    "num_layers": 6,
    "hidden_scale": 4,
    "context": 500,
    "depformer_dim": 192,
    "depformer_dim_feedforward": 768,
    "depformer_num_heads": 3,
    "depformer_num_layers": 2,
    "depformer_weights_per_step_schedule": [0, 1, 1, 1, 1, 1, 1, 1],
}

BUILTIN_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "moshi-7b": (MOSHI_7B_LM, MOSHI_7B_MIMI),
    "test-small": (TEST_SMALL_LM, TEST_SMALL_MIMI),
    "antiphon-small": (ANTIPHON_SMALL_LM, ANTIPHON_SMALL_MIMI),
}
DEFAULT_MODEL = "antiphon-small"


def builtin_config(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deep copies of the (LM config.json, Mimi config) of a built-in configuration."""
    lm, mimi = BUILTIN_CONFIGS[name]
    return copy.deepcopy(lm), copy.deepcopy(mimi)
