"""Frame-synchronous scheduling: the engine thread's tick loop and the links to live sessions.

A tick takes the oldest waiting frame of every live slot, steps them all as one batch, and hands each
session its output. The sessions' own audio clocks pace the ticks: a tick starts as soon as every live
slot has a frame waiting, so that no frame sits out the rest of an 80 ms period for a fixed tick (a lone
session's frame is stepped as soon as it is in), and at the latest when the oldest waiting frame has
waited one frame (80 ms), so that each frame still gets a tick within a frame of arriving. Slots with no
frame waiting then are masked and keep their state, so a late or vanished client never holds up the
others; its frames go into later ticks in order.

Queues and what happens when one fills:
- inbox (session -> engine, `INBOX_FRAMES` frames): when full the session stops reading its socket
  until the engine takes a frame, so TCP pushes back on the client and no audio is dropped;
- outbox (engine -> session, owned by the session): when full the client is not reading its replies
  and the session is closed with an error; the engine never waits for a session.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .engine import Engine
from .metrics import Metrics
from .params import SamplingParams

logger = logging.getLogger(__name__)

FRAME_SECONDS = 0.08
INBOX_FRAMES = 25  # two seconds of audio


@dataclass
class SlotOutput:
    step: int  # the session's step that produced it: 0 is its first 80 ms of input
    pcm: np.ndarray
    text: str | None


@dataclass
class SlotLink:
    """One session's connection to the engine thread.

    `deliver` and `fail` are called from the engine thread and must be thread-safe."""

    params: SamplingParams
    deliver: Callable[[SlotOutput], None]
    fail: Callable[[str], None]
    inbox: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=INBOX_FRAMES))  # (arrival, frame)
    joined: bool = False  # engine thread only: the slot was reset for this session
    steps: int = 0        # engine thread only
    frame_arrived: Callable[[], None] = lambda: None  # set by the scheduler that holds the link

    def put(self, frame: np.ndarray, block: bool = True) -> None:
        """Queue a frame for the engine (raises queue.Full when not blocking and the inbox is full)."""
        self.inbox.put((time.monotonic(), frame), block)
        self.frame_arrived()

    def oldest_arrival(self) -> float | None:
        """When the oldest waiting frame arrived, or None when none is waiting."""
        with self.inbox.mutex:
            return self.inbox.queue[0][0] if self.inbox.queue else None


class Scheduler:
    def __init__(self, engine: Engine, metrics: Metrics, frame_seconds: float = FRAME_SECONDS) -> None:
        self.engine = engine
        self.metrics = metrics
        self.frame_seconds = frame_seconds
        self._links: list[SlotLink | None] = [None] * engine.slots
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._arrived = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None

    @property
    def slots(self) -> int:
        return self.engine.slots

    def used_slots(self) -> int:
        with self._lock:
            return sum(link is not None for link in self._links)

    def acquire(self, link: SlotLink) -> int | None:
        """Give `link` a free slot, or None when every slot is taken (or the engine has failed)."""
        with self._lock:
            if self.failure is not None:
                return None
            for slot, held in enumerate(self._links):
                if held is None:
                    link.frame_arrived = self._arrived.set
                    self._links[slot] = link
                    return slot
        return None

    def release(self, slot: int, link: SlotLink) -> None:
        with self._lock:
            if self._links[slot] is link:
                self._links[slot] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="antiphon-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._arrived.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def healthy(self) -> bool:
        return self.failure is None and self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while self._wait_for_frames():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # the engine is broken: tell every session, refuse new ones
                logger.exception("engine step failed")
                self._fail_all(f"the engine failed: {exc}")
                return
            if time.monotonic() - started > self.frame_seconds:
                self.metrics.overrun_ticks.inc()

    def _wait_for_frames(self) -> bool:
        """Wait until every live slot has a frame, or some frame has waited a frame's time; False when
        stopping."""
        while not self._stop.is_set():
            self._arrived.clear()  # before looking, so that a frame put meanwhile wakes the wait below
            with self._lock:
                live = [link for link in self._links if link is not None]
            arrivals = [link.oldest_arrival() for link in live]
            waiting = [arrival for arrival in arrivals if arrival is not None]
            if live and len(waiting) == len(live):
                return True
            if not waiting:
                self._arrived.wait()
                continue
            remaining = min(waiting) + self.frame_seconds - time.monotonic()
            if remaining <= 0:
                return True
            self._arrived.wait(remaining)
        return False

    def tick(self) -> bool:
        """Step every slot that has a frame waiting; returns whether anything was stepped."""
        with self._lock:
            links = list(self._links)
        engine = self.engine
        pcm = np.zeros((engine.slots, engine.frame_size), dtype=np.float32)
        stepping = np.zeros(engine.slots, dtype=bool)
        joining: dict[int, SamplingParams] = {}
        for slot, link in enumerate(links):
            if link is None:
                continue
            try:
                _, pcm[slot] = link.inbox.get_nowait()
            except queue.Empty:
                if link.joined:
                    self.metrics.late_frames.inc()
                continue
            stepping[slot] = True
            if not link.joined:
                joining[slot] = link.params
                link.joined = True
        if not stepping.any():
            return False
        started = time.perf_counter()
        result = engine.step(pcm, stepping, joining)
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self.metrics.frames.inc(int(stepping.sum()))
        for slot in np.flatnonzero(stepping):
            link = links[slot]
            assert link is not None
            step, link.steps = link.steps, link.steps + 1
            if result.produced[slot]:
                link.deliver(SlotOutput(step, result.pcm[slot], engine.text_piece(int(result.text[slot]))))
        return True

    def _fail_all(self, message: str) -> None:
        with self._lock:
            self.failure = message
            links, self._links = self._links, [None] * len(self._links)
        for link in links:
            if link is not None:
                link.fail(message)
