"""Opus coding off the event loop, with results handed back through the loop's mailbox.

libopus runs without the GIL (ctypes lets go of it), so sessions' audio is coded on all cores while the
loop serves the sockets. `loop.run_in_executor` would do the hand-off too, but at 128 sessions the loop
makes 3,200 of them a second, and each costs it a concurrent Future chained to an asyncio Future, the
executor's locks, and one wake-up of the loop per result. Here a job is a tuple on a C queue, and its
result comes back through the `LoopMailbox`, which wakes the loop once for every result that arrived
while it was busy.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .loop_mailbox import LoopMailbox

T = TypeVar("T")


class CodecThreads:
    def __init__(self, threads: int | None = None) -> None:
        self._jobs: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"antiphon-opus-{index}", daemon=True)
                         for index in range(threads or os.cpu_count() or 1)]
        for thread in self._threads:
            thread.start()

    async def run(self, mailbox: LoopMailbox, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a codec thread; its result or exception, on the mailbox's loop."""
        future = asyncio.get_running_loop().create_future()
        self._jobs.put((future, mailbox, function, args))
        return await future

    def _work(self) -> None:
        while True:  # daemon threads: they end with the server's process
            future, mailbox, function, args = self._jobs.get()
            try:
                result = function(*args)
            except Exception as exc:
                mailbox.post(_settle, future, None, exc)
            else:
                mailbox.post(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: Exception | None) -> None:
    if future.cancelled():  # the session ended while its audio was being coded
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
