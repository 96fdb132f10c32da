"""Writing a model folder in the layout of Kyutai's model repositories, which `loader` reads back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from safetensors.torch import save_file


def write_kyutai_folder(folder: Path, lm: LMModel, mimi: MimiModel, lm_config: dict[str, Any],
                        mimi_config: dict[str, Any], tokenizer: Path) -> Path:
    """Save `lm`, `mimi` and the sentencepiece `tokenizer` under the file names `lm_config` gives."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(lm_config)
    config.setdefault("moshi_name", "model.safetensors")
    config.setdefault("mimi_name", "mimi.safetensors")
    config.setdefault("tokenizer_name", "tokenizer.model")
    config.setdefault("mimi_config_name", "mimi_config.json")
    save_file(_contiguous(lm.state_dict()), str(folder / config["moshi_name"]))
    save_file(_contiguous(mimi.state_dict()), str(folder / config["mimi_name"]))
    (folder / config["mimi_config_name"]).write_text(json.dumps(mimi_config, indent=2))
    shutil.copyfile(tokenizer, folder / config["tokenizer_name"])
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _contiguous(state: dict) -> dict:
    return {key: value.detach().contiguous().cpu() for key, value in state.items()}
