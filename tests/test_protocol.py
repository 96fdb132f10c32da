"""The wire format's pure functions."""

from __future__ import annotations

import json
import struct

import pytest

from antiphon.server import protocol
from antiphon.server.params import SamplingParams
from antiphon.server.protocol import CloseCode, Kind, ProtocolError


def test_server_messages_are_moshi_bytes():
    assert protocol.handshake() == b"\x00\x00\x00"
    assert protocol.audio(b"OggS..") == b"\x01OggS.."
    assert protocol.text(" héllo") == b"\x02 h\xc3\xa9llo"
    assert protocol.error("full") == b"\x05full"
    assert json.loads(protocol.metadata({"a": 1})[1:]) == {"a": 1}
    message = protocol.timed_text(300, " cat")
    assert message[0] == 0x07 and struct.unpack("<I", message[1:5]) == (300,) and message[5:] == b" cat"


@pytest.mark.parametrize("message, code", [
    (b"", CloseCode.UNSUPPORTED_DATA),
    (b"\x09", CloseCode.UNSUPPORTED_DATA),
    (b"\x00", CloseCode.UNSUPPORTED_DATA),
    (b"\x04{}", CloseCode.UNSUPPORTED_DATA),
    (b"\x03", CloseCode.INVALID_PAYLOAD),
    (b"\x03\x00\x01", CloseCode.INVALID_PAYLOAD),
    (b"\x01" + bytes(100), CloseCode.TOO_BIG),
])
def test_bad_client_messages(message, code):
    with pytest.raises(ProtocolError) as error:
        protocol.parse_client_message(message, max_bytes=64)
    assert error.value.code == code and str(error.value)


def test_good_client_messages():
    assert protocol.parse_client_message(b"\x01OggS", 64) == (Kind.AUDIO, b"OggS")
    assert protocol.parse_client_message(b"\x03\x01", 64) == (Kind.CONTROL, b"\x01")
    assert protocol.parse_client_message(b"\x06", 64) == (Kind.PING, b"")


def test_sampling_from_kyutai_query():
    query = {"text_temperature": "0.5", "text_topk": "10", "audio_temperature": "0", "audio_topk": "100",
             "text_seed": "42", "audio_seed": "-3", "pad_mult": "0", "repetition_penalty": "1.0"}
    params = protocol.parse_sampling(query, SamplingParams())
    assert params == SamplingParams(0.5, 10, 0.0, 100, 42, -3)
    assert protocol.parse_sampling({}, SamplingParams(text_seed=5)) == SamplingParams(text_seed=5)


@pytest.mark.parametrize("query", [{"text_temperature": "hot"}, {"audio_topk": "-1"},
                                   {"text_temperature": "nan"}, {"audio_temperature": "1e9"}])
def test_bad_sampling_query(query):
    with pytest.raises(ProtocolError) as error:
        protocol.parse_sampling(query, SamplingParams())
    assert error.value.code == CloseCode.POLICY and next(iter(query)) in str(error.value)
