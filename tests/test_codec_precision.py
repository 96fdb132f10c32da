"""`--decoder-dtype bfloat16`: the codec's decoder in bfloat16 changes the agent's audio by rounding only,
and no token of any stream."""

from __future__ import annotations

import numpy as np
import torch

from antiphon.models.codec_precision import run_decoder_in
from antiphon.models.loader import WEIGHTS_DIR, load_codec, load_model
from antiphon.models.train.audio_losses import snr_db
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from speech import seconds_of_speech

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)


def served(decoder_dtype: torch.dtype, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, audio) of a greedy session on test-small, its decoder in `decoder_dtype`."""
    model = load_model("test-small", random_weights=True, decoder_dtype=decoder_dtype)
    engine = Engine(model, slots=1)
    tokens, audio = [], []
    for index, frame in enumerate(frames):
        result = engine.step(frame[None], np.array([True]), {0: GREEDY} if index == 0 else None)
        tokens.append(np.concatenate([result.text, result.audio[0]]))
        audio.append(result.pcm[0])
    engine.close()
    return np.stack(tokens), np.concatenate(audio)


def test_a_bfloat16_decoder_serves_the_same_tokens_and_audio_within_rounding() -> None:
    frames = seconds_of_speech(1.6)[:20 * 1920].reshape(20, 1920)
    tokens, audio = served(torch.float32, frames)
    half_tokens, half_audio = served(torch.bfloat16, frames)
    np.testing.assert_array_equal(tokens, half_tokens)
    assert half_audio.dtype == np.float32 and np.abs(audio).max() > 0
    assert snr_db(audio, half_audio) > 20  # random weights (24.7 dB); the shipped codec's test is stricter


@torch.no_grad()
def test_the_shipped_codec_decodes_within_rounding_in_bfloat16_and_still_encodes_in_float32() -> None:
    speech = torch.from_numpy(seconds_of_speech(2.0)[:25 * 1920].astype(np.float32)).view(1, 1, -1)
    full, half = (load_codec(WEIGHTS_DIR / "antiphon-small").eval() for _ in range(2))
    run_decoder_in(half, torch.bfloat16)
    outputs = []
    for mimi in (full, half):
        with mimi.streaming(1):
            codes = [mimi.encode(speech[..., i * 1920:(i + 1) * 1920]) for i in range(25)]
        with mimi.streaming(1):
            pcm = [mimi.decode(code) for code in codes]
        outputs.append((torch.cat(codes, -1), torch.cat(pcm, -1).float().numpy()))
    (codes, audio), (half_codes, half_audio) = outputs
    assert torch.equal(codes, half_codes)  # the encoder and quantizer stayed in float32
    assert next(half.encoder.parameters()).dtype == torch.float32
    assert snr_db(audio, half_audio) > 35
