"""Graceful shutdown: on SIGTERM the server stops taking sessions, tells each live client in a 0x05
message, lets them run for up to a grace period, then ends the rest and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class Drainable(Protocol):
    def warn_shutdown(self, seconds: float) -> None: ...
    def end_for_shutdown(self) -> None: ...


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self.sessions: set[Drainable] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, session: Drainable) -> None:
        self.sessions.add(session)
        self._empty.clear()

    def discard(self, session: Drainable) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._empty.set()

    async def drain(self, grace_seconds: float) -> None:
        self.draining = True
        logger.info("shutting down: %d live sessions get up to %g s", len(self.sessions), grace_seconds)
        for session in list(self.sessions):
            session.warn_shutdown(grace_seconds)
        try:
            await asyncio.wait_for(self._empty.wait(), grace_seconds)
        except asyncio.TimeoutError:
            for session in list(self.sessions):
                session.end_for_shutdown()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._empty.wait(), 5.0)
