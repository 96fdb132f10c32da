"""The wire format of `/api/chat`: Moshi's protocol, byte for byte, plus backward-compatible extensions.

Every WebSocket message is binary; its first byte is the kind. Pure functions, no IO.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict
from enum import IntEnum
from typing import Any, Mapping

from .params import SamplingParams


class Kind(IntEnum):
    HANDSHAKE = 0x00  # server -> client, once the session has its slot: version byte, model byte
    AUDIO = 0x01      # both ways: Ogg Opus pages, 24 kHz mono
    TEXT = 0x02       # server -> client: a UTF-8 piece of the monologue
    CONTROL = 0x03    # client -> server: one action byte (accepted, no effect on the stream)
    METADATA = 0x04   # server -> client: a JSON object
    ERROR = 0x05      # server -> client: UTF-8 text, followed by a close
    PING = 0x06       # client -> server keep-alive
    TIMED_TEXT = 0x07  # extension: u32 little-endian frame index, then the UTF-8 piece


PROTOCOL_VERSION = 0
MODEL_VERSION = 0
CLIENT_KINDS = frozenset({Kind.AUDIO, Kind.CONTROL, Kind.PING})


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003  # a text message, or a kind a client may not send
    INVALID_PAYLOAD = 1007  # undecodable Opus, malformed control
    POLICY = 1008  # bad parameters, idle client, client not reading
    TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013  # every slot is busy


class ProtocolError(Exception):
    """Why a session ends: `code` is the WebSocket close code to answer with, `kind` the label it is
    counted under in the metrics (the close code's name unless a finer one is given)."""

    def __init__(self, message: str, code: CloseCode, kind: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind or code.name.lower()


def handshake() -> bytes:
    return bytes([Kind.HANDSHAKE, PROTOCOL_VERSION, MODEL_VERSION])


def audio(ogg: bytes) -> bytes:
    return bytes([Kind.AUDIO]) + ogg


def text(piece: str) -> bytes:
    return bytes([Kind.TEXT]) + piece.encode("utf-8")


def timed_text(frame: int, piece: str) -> bytes:
    return bytes([Kind.TIMED_TEXT]) + struct.pack("<I", frame) + piece.encode("utf-8")


def metadata(values: Mapping[str, Any]) -> bytes:
    return bytes([Kind.METADATA]) + json.dumps(values).encode("utf-8")


def error(message: str) -> bytes:
    return bytes([Kind.ERROR]) + message.encode("utf-8")


def parse_client_message(message: bytes, max_bytes: int) -> tuple[Kind, bytes]:
    """Split a client's message into (kind, payload), or raise ProtocolError."""
    if len(message) > max_bytes:
        raise ProtocolError(f"message of {len(message)} bytes exceeds the limit of {max_bytes} bytes",
                            CloseCode.TOO_BIG)
    if not message:
        raise ProtocolError("empty message: the first byte must be the message kind",
                            CloseCode.UNSUPPORTED_DATA)
    try:
        kind = Kind(message[0])
    except ValueError:
        raise ProtocolError(f"unknown message kind 0x{message[0]:02x}", CloseCode.UNSUPPORTED_DATA) from None
    if kind not in CLIENT_KINDS:
        raise ProtocolError(f"a client may not send message kind 0x{kind:02x} ({kind.name.lower()})",
                            CloseCode.UNSUPPORTED_DATA)
    payload = message[1:]
    if kind is Kind.CONTROL and len(payload) != 1:
        raise ProtocolError("a control message carries exactly one action byte", CloseCode.INVALID_PAYLOAD)
    return kind, payload


# Query parameters Kyutai's web client sends: (name, type, lowest, highest) of the ones that matter here.
_SAMPLING_QUERY = {
    "text_temperature": (float, 0.0, 10.0),
    "text_topk": (int, 0, 1 << 20),
    "audio_temperature": (float, 0.0, 10.0),
    "audio_topk": (int, 0, 1 << 20),
    "text_seed": (int, -(1 << 63), (1 << 63) - 1),
    "audio_seed": (int, -(1 << 63), (1 << 63) - 1),
}
TIMED_TEXT_QUERY = "text_frames"


def parse_sampling(query: Mapping[str, str], defaults: SamplingParams) -> SamplingParams:
    """Sampling parameters from the query string; unknown parameters are accepted and ignored."""
    values = asdict(defaults)
    for name, (kind, lowest, highest) in _SAMPLING_QUERY.items():
        if name not in query:
            continue
        raw = query[name]
        try:
            value = kind(raw)
        except ValueError:
            raise ProtocolError(f"query parameter {name}={raw!r} is not a {kind.__name__}",
                                CloseCode.POLICY, kind="bad_parameters") from None
        if not lowest <= value <= highest or value != value:
            raise ProtocolError(f"query parameter {name}={raw!r} is outside [{lowest}, {highest}]",
                                CloseCode.POLICY, kind="bad_parameters")
        values[name] = value
    return SamplingParams(**values)


def wants_timed_text(query: Mapping[str, str]) -> bool:
    return query.get(TIMED_TEXT_QUERY, "").lower() in {"1", "true", "yes"}
