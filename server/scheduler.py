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
from collections import deque
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


@dataclass(eq=False)
class SlotLink:
    """One session's connection to the engine thread.

    `deliver` and `fail` are called from the engine thread and must be thread-safe."""

    params: SamplingParams
    deliver: Callable[[SlotOutput], None]
    fail: Callable[[str], None]
    # (arrival, frame) pairs, oldest first: only the scheduler touches it, under its lock (`Scheduler.put`)
    inbox: deque[tuple[float, np.ndarray]] = field(default_factory=deque)
    live: bool = False    # holds a slot (under the scheduler's lock)
    joined: bool = False  # engine thread only: the slot was reset for this session
    steps: int = 0        # engine thread only


class Scheduler:
    def __init__(self, engine: Engine, metrics: Metrics, frame_seconds: float = FRAME_SECONDS) -> None:
        self.engine = engine
        self.metrics = metrics
        self.frame_seconds = frame_seconds
        self._links: list[SlotLink | None] = [None] * engine.slots
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._arrived = threading.Event()
        # Under the lock: live slots, and how many of them have a frame waiting. Kept as counts so that a
        # frame's arrival costs the same with 128 sessions as with one.
        self._live = 0
        self._ready = 0
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
                    self._links[slot] = link
                    link.live = True
                    self._live += 1
                    self._ready += bool(link.inbox)
                    return slot
        return None

    def release(self, slot: int, link: SlotLink) -> None:
        with self._lock:
            if self._links[slot] is link:
                self._links[slot] = None
                link.live = False
                self._live -= 1
                self._ready -= bool(link.inbox)
        self._arrived.set()  # the sessions left may all be ready now

    def put(self, link: SlotLink, frame: np.ndarray) -> None:
        """Queue a session's frame for the engine; raises queue.Full when its inbox is full."""
        with self._lock:
            if len(link.inbox) >= INBOX_FRAMES:
                raise queue.Full
            link.inbox.append((time.monotonic(), frame))
            became_ready = link.live and len(link.inbox) == 1
            self._ready += became_ready
            # the engine thread needs to look again only when every slot has become ready, or when this is
            # the first frame waiting anywhere (its wait starts the clock)
            wake = became_ready and (self._ready == self._live or self._ready == 1)
        if wake:
            self._arrived.set()

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
                if self._live and self._ready == self._live:
                    return True
                oldest = min((link.inbox[0][0] for link in self._links if link is not None and link.inbox),
                             default=None)
            if oldest is None:
                self._arrived.wait()
                continue
            remaining = oldest + self.frame_seconds - time.monotonic()
            if remaining <= 0:
                return True
            self._arrived.wait(remaining)
        return False

    def tick(self) -> bool:
        """Step every slot that has a frame waiting; returns whether anything was stepped."""
        engine = self.engine
        pcm = np.zeros((engine.slots, engine.frame_size), dtype=np.float32)
        stepping = np.zeros(engine.slots, dtype=bool)
        joining: dict[int, SamplingParams] = {}
        late = 0
        with self._lock:
            links = list(self._links)
            for slot, link in enumerate(links):
                if link is None:
                    continue
                if not link.inbox:
                    late += link.joined
                    continue
                _, pcm[slot] = link.inbox.popleft()
                self._ready -= not link.inbox
                stepping[slot] = True
                if not link.joined:
                    joining[slot] = link.params
                    link.joined = True
        self.metrics.late_frames.inc(late)
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
            self._live = self._ready = 0
            for link in links:
                if link is not None:
                    link.live = False
        for link in links:
            if link is not None:
                link.fail(message)
