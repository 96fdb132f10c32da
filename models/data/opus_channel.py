"""The user's audio as the server hears it: through the Ogg Opus round trip of a streaming client.

Served, a user's microphone audio reaches the codec through the client's Opus encoder (sphn's stream
writer, as Antiphon's Python client and Kyutai's clients send it) and the server's decoder (which decodes
as sphn's does). The codec's tokens of that audio differ from those of the recording, and an LM trained
on recordings alone hears it less well (`benchmarks/results/opus_listening.md`).
"""

from __future__ import annotations

import functools

import numpy as np
import sphn

SAMPLE_RATE = 24000
FRAME = 1920  # a client streams 80 ms at a time


def as_served(pcm: np.ndarray) -> np.ndarray:
    """`pcm` (float32, 24 kHz mono) as the server decodes it: encoded and decoded as a client streams
    it, later by the round trip's delay (`round_trip_delay`), as long as it was."""
    return _fitted(_round_trip(pcm, extra=0), len(pcm))


def through_opus(pcm: np.ndarray) -> np.ndarray:
    """`pcm` encoded and decoded as a client streams it, with the round trip's delay taken out, so that
    each word stays where its marks say."""
    delay = round_trip_delay()
    return _fitted(_round_trip(pcm, extra=delay)[delay:], len(pcm))


@functools.cache
def round_trip_delay() -> int:
    """The round trip's delay in samples (the encoder's look-ahead), measured on a burst of noise: the
    Ogg header's pre-skip that sphn writes is not it."""
    burst = np.random.default_rng(0).standard_normal(FRAME * 4).astype(np.float32) * 0.1
    decoded = _round_trip(burst, extra=FRAME)
    span = slice(FRAME, 3 * FRAME)
    return max(range(FRAME), key=lambda lag: float(np.dot(burst[span], decoded[span.start + lag:span.stop + lag])))


def _round_trip(pcm: np.ndarray, extra: int) -> np.ndarray:
    """The decoder's output for `pcm` followed by at least `extra` samples of silence (which push the
    delayed end out), frame by frame."""
    padded = np.concatenate([pcm.astype(np.float32), np.zeros(extra, np.float32)])
    padded = np.pad(padded, (0, -len(padded) % FRAME))
    writer, reader = sphn.OpusStreamWriter(SAMPLE_RATE), sphn.OpusStreamReader(SAMPLE_RATE)
    parts = [reader.append_bytes(writer.append_pcm(padded[i:i + FRAME])) for i in range(0, len(padded), FRAME)]
    return np.concatenate(parts)


def _fitted(pcm: np.ndarray, length: int) -> np.ndarray:
    return np.pad(pcm[:length], (0, max(0, length - len(pcm)))).astype(np.float32)
