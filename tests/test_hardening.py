"""Access control, rate limits and the graceful shutdown, against a real server process."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from antiphon.client.chat import Conversation, chat_url
from conftest import ServerProcess
from speech import seconds_of_speech

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(small_checkpoint, tmp_path_factory):
    process = ServerProcess(small_checkpoint, "--slots", "3", "--auth-token", TOKEN,
                            "--allowed-origin", "http://good.example", "--max-sessions-per-client", "2",
                            log=tmp_path_factory.mktemp("guarded") / "server.log")
    yield process
    process.stop()


async def first_reply(url: str, headers: dict | None = None, send: list[bytes] = ()) -> tuple[list[str], int | None, bool]:
    """Open a session; return (0x05 errors, close code, whether a handshake came)."""
    errors, handshake = [], False
    async with connect(url, additional_headers=headers or {}) as ws:
        for message in send:
            try:
                await ws.send(message)
            except ConnectionClosed:
                break
        try:
            async with asyncio.timeout(3):
                async for reply in ws:
                    handshake |= reply[:1] == b"\x00"
                    if reply[:1] == b"\x05":
                        errors.append(reply[1:].decode())
                    if handshake:
                        break
        except (TimeoutError, ConnectionClosed):
            pass
        return errors, ws.close_code, handshake


def settle(server: ServerProcess) -> None:
    """Wait until the server has let go of every session (a closed client's session ends a moment later)."""
    for _ in range(100):
        if json.loads(server.get("/api/info"))["slots"]["used"] == 0:
            break
        time.sleep(0.05)
    time.sleep(0.2)


def test_bearer_token(guarded):
    errors, code, handshake = asyncio.run(first_reply(chat_url(guarded.base)))
    assert not handshake and code == 1008 and "unauthorized" in errors[0]
    errors, code, handshake = asyncio.run(first_reply(chat_url(guarded.base, auth_id="wrong")))
    assert not handshake and code == 1008
    assert asyncio.run(first_reply(chat_url(guarded.base, auth_id=TOKEN)))[2]
    settle(guarded)
    assert asyncio.run(first_reply(chat_url(guarded.base), {"Authorization": f"Bearer {TOKEN}"}))[2]
    settle(guarded)


def test_origin_allow_list(guarded):
    url = chat_url(guarded.base, auth_id=TOKEN)
    errors, code, handshake = asyncio.run(first_reply(url, {"Origin": "http://evil.example"}))
    assert not handshake and code == 1008 and "origin http://evil.example is not allowed" in errors[0]
    assert asyncio.run(first_reply(url, {"Origin": "http://good.example"}))[2]
    settle(guarded)


def test_sessions_per_client_and_message_rate(guarded):
    url = chat_url(guarded.base, auth_id=TOKEN)

    async def three_at_once():
        async with connect(url) as first, connect(url) as second:
            await first.recv()  # handshakes: two sessions are live
            await second.recv()
            return await first_reply(url)

    errors, code, handshake = asyncio.run(three_at_once())
    settle(guarded)
    assert not handshake and code == 1013 and "too many sessions from 127.0.0.1: at most 2" in errors[0]

    async def flood():
        errors = []
        async with connect(url) as ws:
            try:
                for _ in range(300):
                    await ws.send(b"\x06")
                async for reply in ws:
                    if reply[:1] == b"\x05":
                        errors.append(reply[1:].decode())
            except ConnectionClosed:
                pass
            return errors, ws.close_code

    errors, code = asyncio.run(flood())
    assert code == 1008 and "more than 100 messages a second" in errors[0]
    metrics = guarded.get("/metrics").decode()
    for reason in ("unauthorized", "origin", "client_limit"):
        assert f'antiphon_refused_sessions_total{{reason="{reason}"}}' in metrics
    assert 'antiphon_session_errors_total{kind="rate_limited"} 1.0' in metrics


def test_sigterm_drains_live_sessions_then_exits_cleanly(small_checkpoint, tmp_path):
    server = ServerProcess(small_checkpoint, "--slots", "2", "--grace-seconds", "3", log=tmp_path / "server.log")
    clip = seconds_of_speech(10.0)

    async def scenario():
        async with connect(chat_url(server.base)) as ws:
            conversation = Conversation(ws)
            receiving = asyncio.ensure_future(conversation.receive_all())
            await conversation.started.wait()
            streaming = asyncio.ensure_future(conversation.stream(clip))
            await asyncio.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            late = await first_reply(chat_url(server.base))
            try:
                urllib.request.urlopen(f"{server.http}/healthz", timeout=2)
                health = 200
            except urllib.error.HTTPError as error:
                health, body = error.code, json.loads(error.read())
                assert body["status"] == "draining"
            reply = await receiving
            streaming.cancel()
            return reply, late, health

    reply, late, health = asyncio.run(scenario())
    assert health == 503
    assert not late[2] and late[1] == 1013 and "shutting down" in late[0][0]
    assert any("shutting down: this session ends within 3 s" in error for error in reply.errors)
    assert reply.close_code == 1001
    assert 2.0 < len(reply.pcm) / 24000 < 6.0  # served through the grace period, then ended
    assert server.process.wait(15) == 0
    server.stop()  # already exited: this closes its log


def test_tls(small_checkpoint, tmp_path):
    """--ssl-certfile/--ssl-keyfile serve https and wss with the given certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    trust = ssl.create_default_context(cafile=str(cert))
    server = ServerProcess(small_checkpoint, "--slots", "1", "--ssl-certfile", str(cert), "--ssl-keyfile",
                           str(key), log=tmp_path / "server.log", tls=trust)
    try:
        assert json.loads(server.get("/healthz")) == {"status": "ok"}

        async def secure_session():
            async with connect(chat_url(server.base), ssl=trust) as ws:
                return await ws.recv()

        assert asyncio.run(secure_session()) == b"\x00\x00\x00"
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate is refused
            asyncio.run(connect(chat_url(server.base), ssl=ssl.create_default_context()).__aenter__())
    finally:
        server.stop()
