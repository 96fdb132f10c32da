"""What makes a captured frame replayable: the streaming state stays at fixed addresses.

A CUDA graph replays on the memory it captured; these checks run the engine's captured functions eagerly
(no GPU here) and check what a replay depends on. The GPU run of `benchmarks/gpu_parity.py` checks the
graphs' tokens themselves.
"""

from __future__ import annotations

import numpy as np

from antiphon.models.loader import load_model
from antiphon.server.engine import Engine
from antiphon.server.streaming_state import StatePinning, state_tensors
from antiphon.server.params import SamplingParams
from speech import seconds_of_speech

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)


def test_pinned_steps_keep_every_state_tensor_in_place_and_decode_the_same() -> None:
    model = load_model("test-small", random_weights=True)
    frames = seconds_of_speech(1.0)[:12 * 1920].reshape(12, 1920)
    everyone = np.ones(2, dtype=bool)

    def run(pinned: bool) -> tuple[list[np.ndarray], list[int], list[int]]:
        engine = Engine(model, slots=2)
        pinning = StatePinning(engine.streaming_roots)
        if pinned:
            engine._encode = pinning.wrap(engine._encode_frames)
            engine._generate = pinning.wrap(engine._generate_frames)
        before = state_tensors(engine.streaming_roots)
        outputs, moved, fresh = [], [], []
        for index, frame in enumerate(frames):
            joining = {0: GREEDY, 1: GREEDY} if index == 0 else None
            result = engine.step(np.stack([frame, frame[::-1].copy()]), everyone, joining)
            outputs.append(np.concatenate([result.text[:, None], result.audio], axis=1))
            moved.append(sum(getattr(owner, name) is not tensor for owner, name, tensor in before))
            fresh.append(len(state_tensors(engine.streaming_roots)))
        offsets = engine.lm_gen._streaming_state.offsets.clone()
        engine.close()
        assert offsets.tolist() == [len(frames)] * 2  # the state advanced, in the tensors a graph captured
        return outputs, moved, fresh

    plain, plain_moved, _ = run(pinned=False)
    pinned, pinned_moved, counts = run(pinned=True)
    assert max(plain_moved) > 0, "unpinned, LMGen rebinds its offsets: the case pinning exists for"
    assert pinned_moved == [0] * len(frames)
    assert len(set(counts)) == 1
    for step, (a, b) in enumerate(zip(plain, pinned)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")

