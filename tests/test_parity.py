"""Batched slots must decode exactly what moshi's one-session reference decodes."""

from __future__ import annotations

import numpy as np
import pytest

from antiphon.models.loader import load_model
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from antiphon.models.reference import Trace, frames_of, reference_run
from speech import espeak

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)


@pytest.fixture(scope="module")
def inputs() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(7)
    clips = {
        "a": espeak("What is three plus four?", "en"),
        "b": espeak("Please spell the word cat.", "en-us+f3"),
        "c": espeak("Is the sky blue?", "en+m2"),
        "d": espeak("Count with me, one two three.", "en-gb"),
    }
    return {name: frames_of(clip + 0.003 * rng.standard_normal(len(clip)).astype(np.float32))
            for name, clip in clips.items()}


class Session:
    def __init__(self, name: str, frames: list[np.ndarray], params: SamplingParams = GREEDY) -> None:
        self.name, self.frames, self.params = name, frames, params
        self.sent = 0
        self.trace = Trace([], [], [])


def drive(engine: Engine, plan: dict[int, list[tuple[int, Session]]],
          paused: dict[str, set[int]], ticks: int) -> None:
    """Run `ticks` engine steps. `plan[tick]` puts sessions into slots at that tick (replacing whoever
    held the slot); `paused[name]` lists the ticks at which that session has no frame ready."""
    slots: list[Session | None] = [None] * engine.slots
    for tick in range(ticks):
        joining = {}
        for slot, session in plan.get(tick, []):
            slots[slot] = session
            joining[slot] = session.params
        pcm = np.zeros((engine.slots, engine.frame_size), dtype=np.float32)
        stepping = np.zeros(engine.slots, dtype=bool)
        for slot, session in enumerate(slots):
            if session is None or session.sent >= len(session.frames) or tick in paused.get(session.name, ()):
                continue
            pcm[slot] = session.frames[session.sent]
            session.sent += 1
            stepping[slot] = True
        # a join takes effect on the slot's first stepping tick, as the scheduler does it
        result = engine.step(pcm, stepping, {s: p for s, p in joining.items() if stepping[s]})
        for slot, session in enumerate(slots):
            pending = joining.get(slot)
            if pending is not None and not stepping[slot]:
                plan.setdefault(tick + 1, []).append((slot, session))
            if session is not None and result.produced[slot]:
                session.trace.text.append(int(result.text[slot]))
                session.trace.audio.append(result.audio[slot].copy())
                session.trace.pcm.append(result.pcm[slot].copy())


def assert_same(session: Session, reference: Trace) -> None:
    got = session.trace
    assert len(got.text) == len(reference.text) > 10, session.name
    assert got.text == reference.text, f"text tokens of {session.name} differ"
    np.testing.assert_array_equal(np.stack(got.audio), np.stack(reference.audio),
                                  err_msg=f"audio tokens of {session.name} differ")
    np.testing.assert_allclose(np.concatenate(got.pcm), np.concatenate(reference.pcm), atol=1e-5)


def test_slots_match_single_session_reference_while_sessions_join_leave_and_stall(small_checkpoint, inputs,
                                                                                   batch_invariant_kernels):
    engine = Engine(load_model(str(small_checkpoint)), slots=3)
    engine.warmup()
    a, b, c, d = (Session(name, inputs[name]) for name in "abcd")
    plan = {
        0: [(0, a)],
        3: [(1, b)],
        5: [(2, c)],                              # c joins a slot that warm-up left dirty
        5 + len(inputs["c"]) + 6: [(2, d)],       # c has left (with stalls, below); d reuses its slot
    }
    paused = {"b": set(range(10, 16)), "c": {8, 9, 12}, "a": {20}}
    ticks = 5 + len(inputs["c"]) + 6 + len(inputs["d"]) + 2
    drive(engine, plan, paused, ticks)

    reference_model = load_model(str(small_checkpoint))  # the same weights, loaded separately
    for session in (a, b, c, d):
        assert session.sent == len(session.frames)
        assert_same(session, reference_run(reference_model, session.frames))


def test_reference_is_sensitive_to_input(small_checkpoint, inputs):
    """Guards the parity test itself: different speech must give different tokens."""
    model = load_model(str(small_checkpoint))
    first, second = reference_run(model, inputs["a"]), reference_run(model, inputs["b"])
    n = min(len(first.audio), len(second.audio))
    assert not np.array_equal(np.stack(first.audio[:n]), np.stack(second.audio[:n]))
    assert len({tuple(codes) for codes in first.audio}) > len(first.audio) // 2


def test_seeded_sampling_ignores_batch_neighbours(small_checkpoint, inputs, batch_invariant_kernels):
    """A seeded session draws the same tokens alone as beside other (sampling or greedy) sessions,
    and per-slot temperatures really apply (sampled differs from greedy)."""
    seeded = SamplingParams(text_temperature=0.9, text_topk=20, audio_temperature=0.9, audio_topk=100,
                            text_seed=11, audio_seed=12)
    engine = Engine(load_model(str(small_checkpoint)), slots=3)
    alone = Session("alone", inputs["a"], seeded)
    drive(engine, {0: [(1, alone)]}, {}, len(inputs["a"]))

    crowded = Session("crowded", inputs["a"], seeded)
    neighbour = Session("neighbour", inputs["b"], SamplingParams(text_seed=99, audio_seed=98))
    greedy = Session("greedy", inputs["c"])
    drive(engine, {0: [(0, neighbour), (2, greedy)], 2: [(1, crowded)]}, {"crowded": {5, 6}},
          len(inputs["a"]) + 4)

    assert crowded.trace.text == alone.trace.text
    np.testing.assert_array_equal(np.stack(crowded.trace.audio), np.stack(alone.trace.audio))
    reference = reference_run(load_model(str(small_checkpoint)), inputs["a"])
    assert not np.array_equal(np.stack(alone.trace.audio), np.stack(reference.audio))
    assert_same(greedy, reference_run(load_model(str(small_checkpoint)), inputs["c"]))
