"""The server's Ogg Opus codec (libopus through ctypes) against sphn, which the clients use."""

from __future__ import annotations

import numpy as np
import pytest
import sphn

from antiphon.server.ogg_opus import OggOpusReader, OggOpusWriter
from speech import espeak


@pytest.fixture(scope="module")
def speech_pcm() -> np.ndarray:
    pcm = 0.5 * espeak("Hello there, what is three plus four? Please spell the word cat.", "en")
    return pcm[:len(pcm) // 1920 * 1920]


def frames(pcm: np.ndarray):
    return (pcm[i:i + 1920] for i in range(0, len(pcm), 1920))


def test_clients_decode_what_the_server_encodes(speech_pcm):
    writer, client = OggOpusWriter(), sphn.OpusStreamReader(24000)
    decoded = np.concatenate([client.append_bytes(writer.append_pcm(frame)) for frame in frames(speech_pcm)])
    assert len(decoded) == len(speech_pcm)
    # lossy, and delayed by the encoder's look-ahead: compare loudness 80 ms at a time
    def loudness(pcm):
        return np.sqrt((pcm.reshape(-1, 1920) ** 2).mean(1))
    assert np.corrcoef(loudness(decoded), loudness(speech_pcm))[0, 1] > 0.95


def test_the_server_decodes_what_clients_encode_as_sphn_does(speech_pcm):
    client = sphn.OpusStreamWriter(24000)
    ours, theirs = OggOpusReader(), sphn.OpusStreamReader(24000)
    mine, reference = [], []
    for frame in frames(speech_pcm):
        ogg = client.append_pcm(frame)
        # the same bytes, split at arbitrary points
        cut = len(ogg) // 3
        mine += [ours.append_bytes(ogg[:cut]), ours.append_bytes(ogg[cut:])]
        reference.append(theirs.append_bytes(ogg))
    assert np.array_equal(np.concatenate(mine), np.concatenate(reference))


@pytest.mark.parametrize("garbage, words", [
    (b"not an ogg page" * 10, "not an Ogg page"),
    (b"OggS" + bytes(40), "checksum"),
])
def test_anything_but_ogg_opus_is_refused(garbage, words):
    with pytest.raises(ValueError, match=words):
        OggOpusReader().append_bytes(garbage)


def test_a_stream_without_opus_headers_is_refused(speech_pcm):
    pages = OggOpusWriter().append_pcm(speech_pcm[:1920])
    head_and_tags = len(OggOpusWriter().append_pcm(np.zeros(0, dtype=np.float32)))
    with pytest.raises(ValueError, match="OpusHead"):
        OggOpusReader().append_bytes(pages[head_and_tags:])


def test_ogg_checksum_is_the_one_the_format_defines():
    from antiphon.server.ogg_opus import ogg_crc

    def by_definition(data: bytes) -> int:  # polynomial 0x04c11db7, MSB first, initial 0, no final xor
        crc = 0
        for byte in data:
            crc ^= byte << 24
            for _ in range(8):
                crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
        return crc

    rng = np.random.default_rng(0)
    for size in (0, 1, 27, 255, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert ogg_crc(data) == by_definition(data)
    assert ogg_crc(b"OggS") == by_definition(b"OggS") != 0
