"""Loading a model: a folder in the layout of Kyutai's model repositories, or a built-in configuration
with random weights.

A Kyutai folder holds `config.json` (the LM's keyword arguments plus `moshi_name`, `mimi_name`,
`tokenizer_name` and optionally `mimi_config_name`, `lm_gen_config`), the LM and Mimi safetensors and the
sentencepiece model. Every problem with a folder is raised as `ModelLoadError`, one line naming the file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sentencepiece
import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from safetensors import SafetensorError

from .codec_precision import run_decoder_in
from .configs import BUILTIN_CONFIGS, builtin_config
from .int8_weights import quantize_linears
from .random_init import calibrate_random_codebooks
from .text import SentencePieceText, TextPieces, TokenIdText

logger = logging.getLogger(__name__)

# Keys of config.json that name files or carry serving defaults rather than LM constructor arguments.
_FILE_KEYS = ("moshi_name", "mimi_name", "tokenizer_name", "mimi_config_name", "lora_name")
_NON_LM_KEYS = _FILE_KEYS + ("model_type", "lm_gen_config", "tts_config", "stt_config", "model_id")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one line that names the file at fault."""


@dataclass
class LoadedModel:
    name: str
    mimi: MimiModel
    lm: LMModel
    text: TextPieces
    untrained: bool
    lm_gen_config: dict[str, Any] = field(default_factory=dict)


def load_model(spec: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               random_weights: bool = False, seed: int = 0, context: int | None = None,
               decoder_dtype: torch.dtype = torch.float32, int8_weights: bool = False) -> LoadedModel:
    """Load `spec`: a folder path, or a built-in configuration name (its shipped folder under weights/,
    or random weights when `random_weights` is set).

    `context` overrides the LM's attention context in frames: a smaller one keeps less KV cache per
    session, and changes the output only of sessions longer than it. `decoder_dtype` runs the codec's
    decoder in that dtype (`codec_precision`): the same tokens, the audio rounded. `int8_weights` keeps
    the LM's linear layers' weights in int8 (`int8_weights`): fewer bytes a step, other tokens."""
    model = _load_model(spec, device, dtype, random_weights, seed, context)
    if decoder_dtype != torch.float32:
        run_decoder_in(model.mimi, decoder_dtype)
    if int8_weights:
        quantize_linears(model.lm)
    return model


def _load_model(spec: str, device: str | torch.device, dtype: torch.dtype | None, random_weights: bool,
                seed: int, context: int | None) -> LoadedModel:
    if context is not None and context < 1:
        raise ModelLoadError(f"a context of {context} frames: it must be at least 1")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    path = Path(spec)
    if spec in BUILTIN_CONFIGS and not path.exists():
        shipped = WEIGHTS_DIR / spec
        if random_weights:
            return _random_model(spec, device, dtype, seed, context)
        if (shipped / "config.json").is_file():
            return _load_folder(shipped, device, dtype, random_weights=False, seed=seed, context=context)
        raise ModelLoadError(
            f"built-in configuration '{spec}' has no trained model in {shipped}: pass --model FOLDER with "
            f"a checkpoint in Kyutai's layout, or --random-weights for an untrained model")
    if not path.is_dir():
        names = ", ".join(sorted(BUILTIN_CONFIGS))
        raise ModelLoadError(f"{spec}: no such model folder, and not a built-in configuration ({names})")
    return _load_folder(path, device, dtype, random_weights, seed, context)


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def lm_kwargs_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _NON_LM_KEYS}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing")
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return value


def _named_file(folder: Path, config: dict[str, Any], key: str, default: str | None) -> Path | None:
    name = config.get(key, default)
    if name is None:
        return None
    path = folder / name
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing (named by '{key}' in {folder / 'config.json'})")
    return path


def _load_folder(folder: Path, device: torch.device, dtype: torch.dtype,
                 random_weights: bool, seed: int, context: int | None = None) -> LoadedModel:
    config_path = folder / "config.json"
    config = _with_context(_read_json(config_path), context)
    lm_weights = _named_file(folder, config, "moshi_name", loaders.MOSHI_NAME)
    mimi_weights = _named_file(folder, config, "mimi_name", loaders.MIMI_NAME)
    tokenizer = _named_file(folder, config, "tokenizer_name", loaders.TEXT_TOKENIZER_NAME)
    mimi_config_path = _named_file(folder, config, "mimi_config_name", None)
    assert lm_weights and mimi_weights and tokenizer
    if random_weights:
        lm_weights = mimi_weights = None  # the folder's configuration, untrained
    mimi = _mimi(mimi_weights, mimi_config_path or config_path, mimi_config_path is not None, device,
                 _num_codebooks(config))
    lm = _build(lm_weights, config_path,
                lambda: loaders.get_moshi_lm(lm_weights, lm_kwargs=lm_kwargs_of(config),
                                             device=device, dtype=dtype))
    if random_weights:
        _randomize(mimi, seed)
    text = _load_tokenizer(tokenizer, lm.text_card)
    name = folder.resolve().name
    _announce(name, random_weights)
    return LoadedModel(name, mimi, lm, text, untrained=random_weights,
                       lm_gen_config=dict(config.get("lm_gen_config", {})))


def load_codec(folder: Path, device: str | torch.device = "cpu", num_codebooks: int = 8) -> MimiModel:
    """A codec alone (`mimi.safetensors` + `mimi_config.json`), read as a model folder's codec is."""
    weights = folder / "mimi.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: missing")
    return _mimi(weights, folder / "mimi_config.json", True, torch.device(device), num_codebooks)


def _mimi(weights: Path | None, config_path: Path, own_config: bool, device: torch.device,
          num_codebooks: int) -> MimiModel:
    """Mimi from its weights and config file (Kyutai's own Mimi configuration when the folder names none)."""
    config = _read_json(config_path) if own_config else loaders._mimi_config
    return _build(weights, config_path,
                  lambda: loaders.get_mimi(weights, config, device=device, num_codebooks=num_codebooks))


def _build(weights: Path | None, config_path: Path, build):
    """Run a moshi builder, turning its failures into one-line errors that name the file."""
    try:
        return build()
    except (RuntimeError, SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        culprit = weights if weights is not None else config_path
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, RuntimeError) and "size mismatch" in str(exc):
            first_line = next(line.strip() for line in str(exc).splitlines() if "size mismatch" in line)
        raise ModelLoadError(f"{culprit}: does not match {config_path.name} ({first_line})") from None


def _num_codebooks(config: dict[str, Any]) -> int:
    return max(config["dep_q"], config["n_q"] - config["dep_q"])


def _load_tokenizer(path: Path, text_card: int) -> TextPieces:
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: not a sentencepiece model ({exc})") from None
    if processor.vocab_size() > text_card:
        raise ModelLoadError(f"{path}: {processor.vocab_size()} pieces, more than the LM's "
                             f"text_card of {text_card}")
    return SentencePieceText(processor)


def _random_model(name: str, device: torch.device, dtype: torch.dtype, seed: int,
                  context: int | None) -> LoadedModel:
    lm_config, mimi_config = builtin_config(name)
    mimi, lm = build_random(_with_context(lm_config, context), mimi_config, device, dtype, seed)
    _announce(name, random_weights=True)
    return LoadedModel(name, mimi, lm, TokenIdText(), untrained=True)


def _with_context(config: dict[str, Any], context: int | None) -> dict[str, Any]:
    return config if context is None else {**config, "context": context}


def build_random(lm_config: dict[str, Any], mimi_config: dict[str, Any], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[MimiModel, LMModel]:
    """A Mimi and an LM of the given configurations with random weights (calibrated Mimi codebooks)."""
    torch.manual_seed(seed)
    mimi = loaders.get_mimi(None, mimi_config, device=device, num_codebooks=_num_codebooks(lm_config))
    lm = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs_of(lm_config), device=device, dtype=dtype)
    _randomize(mimi, seed)
    return mimi, lm


def _randomize(mimi: MimiModel, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    calibrate_random_codebooks(mimi, generator)


def _announce(name: str, random_weights: bool) -> None:
    if random_weights:
        banner = "!" * 78
        logger.warning("%s\n!! model '%s' has RANDOM WEIGHTS: it is untrained and its speech and text "
                       "are noise.\n%s", banner, name, banner)
    else:
        logger.info("loaded model '%s'", name)
