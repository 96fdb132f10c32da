"""The browser client in real headless Chromium, with a fake microphone speaking an espeak-ng file."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time

import pytest

from antiphon.client.chat import chat_url, talk
from browser import chromium_page
from conftest import ServerProcess
from speech import seconds_of_speech


@pytest.fixture(scope="module")
def one_slot_server(small_checkpoint, tmp_path_factory):
    process = ServerProcess(small_checkpoint, "--slots", "1",
                            log=tmp_path_factory.mktemp("browser") / "server.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory):
    wav = tmp_path_factory.mktemp("microphone") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Hello there. What is three plus four? "
                    "Please spell the word cat for me. Is the sky blue? Thank you, goodbye."], check=True)
    return wav


def frames_stepped(server: ServerProcess) -> float:
    match = re.search(r"^antiphon_frames_total (\S+)$", server.get("/metrics").decode(), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(page, expression: str, timeout: float = 20.0) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000)


def test_page_talks_plays_and_shows_the_monologue(one_slot_server, microphone_wav, tmp_path):
    server = one_slot_server
    before = frames_stepped(server)
    with chromium_page(microphone_wav) as page:
        page.goto(f"{server.http}/")
        assert page.inner_text("#status") == "not connected"
        page.click("#connect")
        wait_for(page, "document.getElementById('status').dataset.kind === 'live'")
        # the agent's audio is decoded and played through the worklet's jitter buffer
        wait_for(page, "window.antiphon.playback && window.antiphon.playback.playedSamples > 3 * 24000")
        wait_for(page, "document.getElementById('monologue').textContent.trim().length > 0")
        wait_for(page, "/\\d+ ms/.test(document.getElementById('stat-latency').textContent)")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / "browser-client.png"))
        counters = page.evaluate("window.antiphon.playback")
        latency = page.inner_text("#stat-latency")
        session_info = page.inner_text("#session-info")
        assert page.inner_text("#error") == ""
        page.click("#connect")  # disconnect
        wait_for(page, "document.getElementById('status').textContent.startsWith('disconnected')")
    assert counters["receivedSamples"] >= counters["playedSamples"] > 3 * 24000
    assert int(latency.split()[0]) > 0
    assert "session" in session_info and "model" in session_info
    assert frames_stepped(server) - before >= 3 / 0.08  # at least 3 s of the page's audio reached the model
    print(f"screenshot: {tmp_path / 'browser-client.png'}")


def test_full_server_refusal_shows_in_words(one_slot_server, microphone_wav, tmp_path):
    server = one_slot_server
    holder = threading.Thread(target=lambda: asyncio.run(talk(chat_url(server.base), seconds_of_speech(8.0))))
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while b'"used":1' not in server.get("/api/info") and time.monotonic() < deadline:
            time.sleep(0.1)
        with chromium_page(microphone_wav) as page:
            page.goto(f"{server.http}/")
            page.click("#connect")
            wait_for(page, "document.getElementById('error').textContent.includes('server full')")
            wait_for(page, "document.getElementById('status').textContent.includes('the server is full')")
            page.screenshot(path=str(tmp_path / "server-full.png"))
            assert not page.is_hidden("#error")
    finally:
        holder.join()
