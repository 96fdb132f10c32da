"""`--int8-weights`: the LM's linear layers keep int8 weights, each within half a quantization step of
its own, and the engine serves such a model as moshi's own loop decodes it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from antiphon.models.int8_weights import Int8Linear
from antiphon.models.loader import load_model
from antiphon.models.reference import reference_run
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from speech import seconds_of_speech

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)


def test_each_weight_is_within_half_a_step_of_its_own_and_the_layer_computes_with_it() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 32, bias=True)
    int8 = Int8Linear(linear)
    assert int8.weight_int8.dtype == torch.int8 and int8.weight_int8.abs().max() == 127
    step = int8.weight_scale[:, None]
    assert (int8.weight - linear.weight).abs().le(step / 2 + 1e-7).all()
    x = torch.randn(5, 64)
    torch.testing.assert_close(int8(x), x @ int8.weight.T + linear.bias)


def test_the_engine_serves_an_int8_model_as_moshis_loop_decodes_it(batch_invariant_kernels) -> None:
    model = load_model("test-small", random_weights=True, int8_weights=True)
    linears = [m for m in model.lm.modules() if isinstance(m, nn.Linear)]
    assert linears and all(isinstance(m, Int8Linear) for m in linears)
    # moshi's attention takes its KV cache's dtype from the weight it reads: the model's, not int8
    assert all(m.weight.dtype == torch.float32 for m in linears)
    frames = seconds_of_speech(1.6)[:20 * 1920].reshape(20, 1920)
    want = reference_run(model, list(frames))
    engine = Engine(model, slots=2)
    text, audio = [], []
    for index, frame in enumerate(frames):
        pcm = np.zeros((2, 1920), dtype=np.float32)
        pcm[1] = frame
        result = engine.step(pcm, np.array([False, True]), {1: GREEDY} if index == 0 else None)
        if result.produced[1]:
            text.append(int(result.text[1]))
            audio.append(result.audio[1])
    engine.close()
    assert text == want.text and len(text) > 10
    np.testing.assert_array_equal(np.stack(audio), np.stack(want.audio))
