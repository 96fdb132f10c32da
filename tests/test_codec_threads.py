"""Opus coding off the event loop: each session's audio comes back to it in order, with its errors, from
several threads at once, and a session that ends mid-coding costs no one else anything."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from antiphon.server.codec_threads import CodecThreads
from antiphon.server.loop_mailbox import LoopMailbox
from antiphon.server.ogg_opus import OggOpusReader, OggOpusWriter


def test_sessions_coded_at_once_each_get_their_own_audio_back_in_order() -> None:
    codec = CodecThreads(threads=3)
    speech = np.sin(np.arange(1920 * 10) * 2 * np.pi * 220 / 24000).astype(np.float32) * 0.3

    async def session(gain: float) -> np.ndarray:
        mailbox = LoopMailbox(asyncio.get_running_loop())
        writer, reader, heard = OggOpusWriter(), OggOpusReader(), []
        for frame in (gain * speech).reshape(10, 1920):
            ogg = await codec.run(mailbox, writer.append_pcm, frame)
            heard.append(await codec.run(mailbox, reader.append_bytes, ogg))
        return np.concatenate(heard)

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(session(gain) for gain in (0.25, 0.5, 1.0, 2.0)))

    quiet, _, loud, _ = asyncio.run(main())
    assert len(quiet) == len(loud) > 1920 * 8
    # each session heard its own level back: the streams were not mixed up between sessions
    assert np.sqrt(np.mean(loud ** 2)) > 3 * np.sqrt(np.mean(quiet ** 2))


def test_a_decoding_error_reaches_the_session_that_sent_the_bytes() -> None:
    codec = CodecThreads(threads=2)

    async def main() -> None:
        mailbox = LoopMailbox(asyncio.get_running_loop())
        with pytest.raises(ValueError):
            await codec.run(mailbox, OggOpusReader().append_bytes, b"not an ogg stream at all" * 4)
        # the threads keep serving after a job failed
        assert len(await codec.run(mailbox, OggOpusWriter().append_pcm, np.zeros(1920, np.float32))) > 0

    asyncio.run(main())


def test_a_session_cancelled_while_its_audio_is_coded_leaves_the_loop_working(caplog) -> None:
    codec = CodecThreads(threads=1)

    async def main() -> None:
        mailbox = LoopMailbox(asyncio.get_running_loop())
        slow = asyncio.ensure_future(codec.run(mailbox, time.sleep, 0.2))
        await asyncio.sleep(0.05)
        slow.cancel()
        # the next job queues behind the cancelled one and still gets its answer
        assert await codec.run(mailbox, sum, [1, 2, 3]) == 6
        assert slow.cancelled()

    asyncio.run(main())
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
