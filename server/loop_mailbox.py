"""Calls from other threads into the event loop, one wake-up of the loop for all that arrive meanwhile.

The engine thread posts each tick's outputs here, and the codec threads their coded audio
(`codec_threads.py`). Scheduling each with `call_soon_threadsafe` wakes the loop once per call (a write
to its self-pipe, a system call that also passes the interpreter lock back and forth): with 128
sessions, 128 hand-offs a tick. The mailbox queues the calls and wakes the loop only when the queue was
empty, so a tick's calls run in one pass, in the order they were posted.

The queue is unbounded, like the loop's own queue of callbacks that it replaces: it holds what the
other threads produced while the loop was busy, and each session's bounded outbox decides what happens
to a client that does not read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class LoopMailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` on the loop soon; thread-safe."""
        with self._lock:
            self._pending.append((callback, args))
            wake = len(self._pending) == 1
        if wake:
            self._loop.call_soon_threadsafe(self._run_pending)

    def _run_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for callback, args in pending:
            try:
                callback(*args)
            except Exception:  # one session's failure must not cost the others their outputs
                logger.exception("a call from another thread failed")
