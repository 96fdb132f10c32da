"""The engine thread's calls into the event loop: in order, each tick in one pass, and one failing call
never costs another session its output."""

from __future__ import annotations

import asyncio
import threading

from antiphon.server.loop_mailbox import LoopMailbox


def test_calls_from_another_thread_run_in_order_and_survive_a_failing_one() -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        mailbox = LoopMailbox(loop)
        got: list[int] = []
        done = asyncio.Event()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting_call_soon_threadsafe(callback, *args):
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting_call_soon_threadsafe  # type: ignore[method-assign]

        def deliver(value: int) -> None:
            if value == 3:
                raise RuntimeError("one session's delivery fails")
            got.append(value)
            if value == 127:
                done.set()

        def engine_tick() -> None:  # one tick's outputs for 128 sessions, posted while the loop is busy
            for value in range(128):
                mailbox.post(deliver, value)

        thread = threading.Thread(target=engine_tick)
        thread.start()
        thread.join()
        await asyncio.wait_for(done.wait(), 5)
        return got, wakeups

    got, wakeups = asyncio.run(main())
    assert got == [value for value in range(128) if value != 3]
    assert wakeups == 1
