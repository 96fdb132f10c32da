"""Protocol fuzzing: over 10,000 malformed or adversarial messages at a live server while a good session
runs. The server never crashes, and the good session's reply equals a clean run's, byte for byte."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sphn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from antiphon.client.chat import FRAME_SIZE, SAMPLE_RATE, chat_url, talk
from conftest import ServerProcess
from speech import seconds_of_speech

GREEDY = {"text_temperature": 0, "audio_temperature": 0, "text_frames": 1}
TARGET_MESSAGES = 10_000


def _real_pages() -> list[bytes]:
    writer = sphn.OpusStreamWriter(SAMPLE_RATE)
    pcm = seconds_of_speech(1.0)
    return [page for i in range(0, len(pcm), FRAME_SIZE) if (page := writer.append_pcm(pcm[i:i + FRAME_SIZE]))]


PAGES = _real_pages()

message = st.one_of(
    st.binary(max_size=64),                                                     # anything at all
    st.tuples(st.integers(0, 255), st.binary(max_size=400)).map(lambda kp: bytes([kp[0]]) + kp[1]),
    st.binary(max_size=300).map(lambda b: b"\x01OggS" + b),                      # Ogg-looking garbage
    st.sampled_from(range(len(PAGES))).flatmap(                                 # real pages, mangled
        lambda i: st.tuples(st.integers(0, len(PAGES[i])), st.binary(max_size=8)).map(
            lambda cut: b"\x01" + PAGES[i][:cut[0]] + cut[1] + PAGES[i][cut[0] + len(cut[1]):])),
    st.integers(0, 255).map(lambda action: bytes([0x03, action])),               # control, any action
    st.just(b"\x06"),                                                           # pings
    st.text(max_size=50),                                                       # text frames
    st.integers(16 * 1024, 20 * 1024).map(lambda n: b"\x01" + bytes(n)),         # just over the limit
)


@pytest.fixture(scope="module")
def fuzz_server(small_checkpoint, tmp_path_factory):
    process = ServerProcess(small_checkpoint, "--slots", "3", "--max-message-kib", "16",
                            "--max-messages-per-second", "100000", "--idle-seconds", "5",
                            log=tmp_path_factory.mktemp("fuzz") / "server.log")
    yield process
    process.stop()


def test_fuzzed_server_stays_up_and_the_good_session_is_untouched(fuzz_server):
    server = fuzz_server
    clip = seconds_of_speech(25.0, "en-gb-x-rp")
    clean = asyncio.run(talk(chat_url(server.base, **GREEDY), clip))
    results = {}
    good = threading.Thread(target=lambda: results.update(
        reply=asyncio.run(talk(chat_url(server.base, **GREEDY), clip))))
    good.start()
    sent = [0]

    async def attack(messages: list[bytes | str]) -> None:
        try:
            async with connect(chat_url(server.base), open_timeout=10) as ws:
                for item in messages:
                    await ws.send(item)
                    sent[0] += 1
                await asyncio.sleep(0.01)
        except (ConnectionClosed, InvalidStatus, OSError):
            pass

    @settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(message, min_size=1, max_size=60))
    def fuzz(messages):
        asyncio.run(attack(messages))

    while sent[0] < TARGET_MESSAGES:
        fuzz()
    good.join()
    assert sent[0] >= TARGET_MESSAGES
    assert server.process.poll() is None
    assert server.get("/healthz") == b'{"status":"ok"}'
    reply = results["reply"]
    assert reply.errors == []
    assert reply.timed_text == clean.timed_text
    assert bytes(reply.ogg) == bytes(clean.ogg)
