"""Real speech for tests: espeak-ng (a Debian package) resampled to 24 kHz."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import sphn

SAMPLE_RATE = 24000


def espeak(text: str, voice: str = "en", speed: int = 160, pitch: int = 50) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True)
        audio, _ = sphn.read(str(wav), sample_rate=SAMPLE_RATE)
    return np.ascontiguousarray(audio[0], dtype=np.float32)


def seconds_of_speech(seconds: float, voice: str = "en", text: str | None = None) -> np.ndarray:
    """At least `seconds` of speech (repeating the sentence as needed), cut to exactly that length."""
    sentence = text or "Hello there. What is three plus four? Please spell the word cat for me."
    audio = espeak(sentence, voice)
    while len(audio) < seconds * SAMPLE_RATE:
        audio = np.concatenate([audio, espeak(sentence, voice)])
    return audio[: int(seconds * SAMPLE_RATE)]
