"""The scheduler's pacing: ticks follow the sessions' own frames, and a silent session holds up the
others for at most one frame."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from antiphon.models.loader import load_model
from antiphon.server.engine import Engine
from antiphon.server.metrics import Metrics
from antiphon.server.params import SamplingParams
from antiphon.server.scheduler import Scheduler, SlotLink, SlotOutput

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)


@pytest.fixture(scope="module")
def engine():
    engine = Engine(load_model("test-small", random_weights=True), slots=2)
    engine.warmup()
    yield engine
    engine.close()


def running(engine: Engine, frame_seconds: float) -> Scheduler:
    scheduler = Scheduler(engine, Metrics(engine.slots), frame_seconds=frame_seconds)
    scheduler.start()
    return scheduler


def session(scheduler: Scheduler) -> tuple[SlotLink, queue.Queue, int]:
    """A session holding a slot: its link, the queue its replies arrive in (with their times), its slot."""
    replies: queue.Queue[tuple[float, SlotOutput]] = queue.Queue()
    link = SlotLink(GREEDY, deliver=lambda output: replies.put((time.monotonic(), output)), fail=print)
    slot = scheduler.acquire(link)
    assert slot is not None
    return link, replies, slot


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [0.05 * rng.standard_normal(1920).astype(np.float32) for _ in range(count)]


def test_a_lone_sessions_frames_are_stepped_as_they_arrive(engine):
    scheduler = running(engine, frame_seconds=60.0)  # a tick held for a frame period would take minutes
    try:
        link, replies, _ = session(scheduler)
        for frame in frames(4):
            scheduler.put(link, frame)
        received = [replies.get(timeout=20)[1] for _ in range(3)]  # LMGen's first step has no reply yet
        assert [output.step for output in received] == [1, 2, 3]
    finally:
        scheduler.stop()


def test_a_silent_session_holds_up_the_others_for_about_a_frame(engine):
    frame_seconds = 0.5
    scheduler = running(engine, frame_seconds)
    try:
        talking, replies, _ = session(scheduler)
        session(scheduler)  # connected, but sends nothing
        sent = []
        for frame in frames(4):
            sent.append(time.monotonic())
            scheduler.put(talking, frame)
            time.sleep(0.05)
        received = [replies.get(timeout=20) for _ in range(3)]
        assert [output.step for _, output in received] == [1, 2, 3]
        for at, output in received:  # each frame waited for the silent session a frame, then went on
            assert frame_seconds * 0.9 <= at - sent[output.step] <= frame_seconds * 4
    finally:
        scheduler.stop()


def test_when_a_silent_session_leaves_the_others_go_on_at_once(engine):
    scheduler = running(engine, frame_seconds=60.0)
    try:
        talking, replies, _ = session(scheduler)
        silent, _, silent_slot = session(scheduler)
        for frame in frames(2):
            scheduler.put(talking, frame)
        time.sleep(0.2)
        assert replies.empty()  # waiting for the silent session, up to a frame
        scheduler.release(silent_slot, silent)
        assert replies.get(timeout=20)[1].step == 1  # stepped once it was the only one, not a minute later
    finally:
        scheduler.stop()
