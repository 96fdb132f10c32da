"""Bad clients get a clear error and a close; a good session beside them decodes exactly as if alone."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import sphn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from antiphon.client.chat import FRAME_SIZE, SAMPLE_RATE, chat_url, talk
from conftest import ServerProcess
from speech import seconds_of_speech

GREEDY = {"text_temperature": 0, "audio_temperature": 0, "text_frames": 1}


@pytest.fixture(scope="module")
def strict_server(small_checkpoint, tmp_path_factory):
    process = ServerProcess(small_checkpoint, "--slots", "3", "--idle-seconds", "2",
                            "--max-message-kib", "16", "--send-queue-frames", "8", "--ping-seconds", "2",
                            log=tmp_path_factory.mktemp("strict") / "server.log")
    yield process
    process.stop()


def opus_pages(seconds: float) -> list[bytes]:
    writer = sphn.OpusStreamWriter(SAMPLE_RATE)
    pcm = seconds_of_speech(seconds, "en-us")
    pages = [writer.append_pcm(pcm[i:i + FRAME_SIZE]) for i in range(0, len(pcm) - FRAME_SIZE + 1, FRAME_SIZE)]
    return [page for page in pages if page]


async def misbehave(url: str, messages: list[bytes | str], linger: float = 5.0) -> tuple[list[str], int | None]:
    """Send `messages`, then read until the server closes; returns (0x05 errors, close code)."""
    errors = []
    async with connect(url) as ws:
        for message in messages:
            await ws.send(message)
        try:
            async with asyncio.timeout(linger):
                async for reply in ws:
                    if isinstance(reply, bytes) and reply[:1] == b"\x05":
                        errors.append(reply[1:].decode())
        except (TimeoutError, ConnectionClosed):
            pass
        return errors, ws.close_code


async def slow_reader(server: ServerProcess, pages: list[bytes]) -> tuple[int | None, float]:
    """Send audio in real time but never read the replies (nor the server's pings), through a tiny
    receive buffer; returns the close code and how long the server put up with it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", server.port))
    started = time.monotonic()
    async with connect(chat_url(server.base), sock=sock, max_queue=1, ping_interval=None) as ws:
        try:
            for page in pages:
                await ws.send(b"\x01" + page)
                await asyncio.sleep(FRAME_SIZE / SAMPLE_RATE)
        except ConnectionClosed:
            pass
    return ws.close_code, time.monotonic() - started


async def vanish(server: ServerProcess, pages: list[bytes]) -> float:
    """Send a little audio, drop the TCP connection without a close; return how long the slot stayed busy."""
    ws = await connect(chat_url(server.base))
    for page in pages[:10]:
        await ws.send(b"\x01" + page)
        await asyncio.sleep(FRAME_SIZE / SAMPLE_RATE)
    used_before = json.loads(server.get("/api/info"))["slots"]["used"]
    ws.transport.abort()
    gone = time.monotonic()
    while json.loads(server.get("/api/info"))["slots"]["used"] >= used_before:
        await asyncio.sleep(0.05)
        assert time.monotonic() - gone < 5
    return time.monotonic() - gone


def test_bad_clients_are_refused_clearly_and_leave_the_good_session_untouched(strict_server):
    server = strict_server
    clip = seconds_of_speech(9.0, "en+m3")
    clean = asyncio.run(talk(chat_url(server.base, **GREEDY), clip))
    pages = opus_pages(30.0)
    chat = chat_url(server.base)

    async def scenario():
        good = asyncio.ensure_future(talk(chat_url(server.base, **GREEDY), clip))
        slow = asyncio.ensure_future(slow_reader(server, pages))
        await asyncio.sleep(0.5)
        results = {}
        results["text message"] = await misbehave(chat, ["hello"])
        results["unknown kind"] = await misbehave(chat, [b"\x09abc"])
        results["server-only kind"] = await misbehave(chat, [b"\x02some text"])
        results["empty message"] = await misbehave(chat, [b""])
        results["undecodable opus"] = await misbehave(chat, [b"\x01" + b"not an ogg page" * 10])
        results["truncated control"] = await misbehave(chat, [b"\x03"])
        results["huge message"] = await misbehave(chat, [b"\x01" + bytes(200_000)])
        results["bad parameter"] = await misbehave(chat_url(server.base, text_temperature="hot"), [])
        results["idle client"] = await misbehave(chat, [b"\x06"], linger=6)
        vanished_after = await vanish(server, pages)
        return await good, results, vanished_after, await slow

    good, results, vanished_after, (slow_code, slow_seconds) = asyncio.run(scenario())
    expected_codes = {
        "text message": 1003, "unknown kind": 1003, "server-only kind": 1003, "empty message": 1003,
        "undecodable opus": 1007, "truncated control": 1007, "huge message": 1009,
        "bad parameter": 1008, "idle client": 1008,
    }
    for case, code in expected_codes.items():
        errors, close_code = results[case]
        assert close_code == code, (case, close_code, errors)
        assert len(errors) == 1 and errors[0], case
    assert "200001 bytes" in results["huge message"][0][0]
    assert "text_temperature" in results["bad parameter"][0][0]
    assert "no audio" in results["idle client"][0][0]
    assert vanished_after < 1.0
    # a client that reads nothing gets no close frame either: the socket is dropped
    assert slow_code == 1006 and slow_seconds < 12, (slow_code, slow_seconds)

    assert good.errors == []
    assert good.timed_text == clean.timed_text
    assert bytes(good.ogg) == bytes(clean.ogg)
    assert len(good.pcm) > len(clip) - 3 * FRAME_SIZE

    metrics = server.get("/metrics").decode()
    for kind, count in (("unsupported_data", 4), ("invalid_payload", 2), ("too_big", 1), ("idle", 1)):
        assert f'antiphon_session_errors_total{{kind="{kind}"}} {count}.0' in metrics, kind
    assert 'antiphon_refused_sessions_total{reason="bad_parameters"} 1.0' in metrics
    assert json.loads(server.get("/api/info"))["slots"]["used"] == 0
    assert "Exception in ASGI application" not in server.log_path.read_text()  # every end was handled


def test_clients_that_leave_mid_reply_end_their_sessions_quietly(strict_server):
    """Closing (or dropping the connection) while the server is still sending replies ends the session
    like any close: the slot is freed and the server logs no unhandled error. A close is a normal end; a
    dropped connection is counted as a lost one."""
    server = strict_server
    pages = opus_pages(4.0)
    lost_before = _error_count(server, "connection_lost")

    async def leave(abort: bool) -> None:
        ws = await connect(chat_url(server.base), max_queue=None)
        for page in pages:  # all at once: the replies keep coming for seconds after
            await ws.send(b"\x01" + page)
        await asyncio.sleep(1.0)
        if abort:
            ws.transport.abort()
        else:
            await ws.close()

    async def scenario():
        for abort in (False, True, False, True):
            await leave(abort)
        await asyncio.sleep(3.0)

    asyncio.run(scenario())
    assert json.loads(server.get("/api/info"))["slots"]["used"] == 0
    assert _error_count(server, "connection_lost") == lost_before + 2
    assert "Exception in ASGI application" not in server.log_path.read_text()


def test_a_client_that_stops_reading_is_dropped_cleanly(strict_server):
    """A client that keeps talking but reads nothing, so answers no pings, through a tiny receive buffer:
    the server gives up on it (the WebSocket layer at the ping timeout, the session when it finds the
    connection closed, or its replies piling up, or its audio stopping) and the slot comes free, with
    the end counted as an error and nothing unhandled in the log."""
    server = strict_server
    errors_before = _error_count(server)

    async def talk_without_reading() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", server.port))
        ws = await connect(chat_url(server.base), sock=sock, max_queue=None, ping_interval=None)
        ws.transport.pause_reading()
        try:
            for page in opus_pages(8.0):
                await ws.send(b"\x01" + page)
                await asyncio.sleep(FRAME_SIZE / SAMPLE_RATE)
        except ConnectionClosed:
            pass
        ws.transport.abort()

    asyncio.run(talk_without_reading())
    assert json.loads(server.get("/api/info"))["slots"]["used"] == 0
    assert _error_count(server) == errors_before + 1
    assert "Exception in ASGI application" not in server.log_path.read_text()


def _error_count(server: ServerProcess, kind: str | None = None) -> float:
    """Sessions ended by an error of `kind` (of any kind: None), from the server's metrics."""
    prefix = "antiphon_session_errors_total" + (f'{{kind="{kind}"}}' if kind else "{")
    return sum(float(line.split()[-1]) for line in server.get("/metrics").decode().splitlines()
               if line.startswith(prefix))
