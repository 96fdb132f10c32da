"""The command-line clients against a real server: file mode, and the mic demo with sounddevice's
stream replaced at the device boundary only."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import sphn

from speech import SAMPLE_RATE, seconds_of_speech


def test_talk_returns_the_reply_and_the_transcript(server, tmp_path):
    speech = tmp_path / "speech.wav"
    sphn.write_wav(str(speech), seconds_of_speech(5.0, "en-us"), SAMPLE_RATE)
    reply, transcript = tmp_path / "reply.wav", tmp_path / "reply.txt"
    result = subprocess.run(
        [sys.executable, "-m", "antiphon.server", "talk", "--url", server.base, "--input", str(speech),
         "--output", str(reply), "--transcript", str(transcript), "--text-temperature", "0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    audio, rate = sphn.read(str(reply))
    assert rate == SAMPLE_RATE and 4.7 <= audio.shape[-1] / SAMPLE_RATE <= 5.1
    assert np.abs(audio).max() > 0
    assert transcript.read_text().strip()
    assert "round trip median" in result.stderr


def test_talk_reports_an_unreachable_server(tmp_path):
    speech = tmp_path / "speech.wav"
    sphn.write_wav(str(speech), np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    result = subprocess.run(
        [sys.executable, "-m", "antiphon.server", "talk", "--url", "ws://127.0.0.1:9", "--input", str(speech),
         "--output", str(tmp_path / "out.wav")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("antiphon: error: cannot reach ws://127.0.0.1:9")


class FakeStream:
    """Stands in for sounddevice.Stream: a 'microphone' that plays a clip and a 'speaker' that records,
    driving the real callback from its own thread at the device's pace, as PortAudio does."""

    microphone = np.zeros(0, dtype=np.float32)
    recorded: list[np.ndarray] = []

    def __init__(self, samplerate, blocksize, channels, dtype, device, callback) -> None:
        self.rate, self.blocksize, self.callback = samplerate, blocksize, callback
        self._running = False

    def __enter__(self):
        self._running = True
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join()

    def _pump(self) -> None:
        position, started, blocks = 0, time.monotonic(), 0
        while self._running:
            block = FakeStream.microphone[position:position + self.blocksize]
            block = np.pad(block, (0, self.blocksize - len(block)))[:, None]
            position += self.blocksize
            out = np.zeros((self.blocksize, 1), dtype=np.float32)
            self.callback(block, out, self.blocksize, None, None)
            FakeStream.recorded.append(out[:, 0].copy())
            blocks += 1
            time.sleep(max(0.0, started + blocks * self.blocksize / self.rate - time.monotonic()))


@pytest.mark.parametrize("device_rate", [24000, 48000])
def test_demo_audio_path(server, monkeypatch, capsys, device_rate):
    sounddevice = pytest.importorskip("sounddevice")
    from antiphon.client import demo

    FakeStream.microphone = demo.resample(seconds_of_speech(4.0), SAMPLE_RATE, device_rate)
    FakeStream.recorded = []
    monkeypatch.setattr(sounddevice, "Stream", FakeStream)
    monkeypatch.setattr(sounddevice, "query_devices",
                        lambda device=None, kind=None: {"default_samplerate": float(device_rate)})
    supported = device_rate == SAMPLE_RATE

    def check(*_, **__):
        if not supported:
            raise sounddevice.PortAudioError("Invalid sample rate")

    monkeypatch.setattr(sounddevice, "check_input_settings", check)
    monkeypatch.setattr(sounddevice, "check_output_settings", check)
    demo.run(argparse.Namespace(url=server.base, list_devices=False, input_device=None,
                                     output_device=None, seconds=4.0, text_temperature=0, text_topk=None,
                                     audio_temperature=None, audio_topk=None, text_seed=None, audio_seed=None))
    played = np.concatenate(FakeStream.recorded)
    assert np.abs(played).max() > 0.001  # the agent's reply reached the speaker
    heard = np.count_nonzero(np.abs(played) > 1e-4) / device_rate
    assert heard > 2.0, heard
    out, err = capsys.readouterr()
    assert out.strip()  # the monologue streamed to stdout
    assert "connected to" in err and "s of reply" in err
