"""A Python client for `/api/chat`: streams PCM as Ogg Opus at the audio clock and collects the replies.

The same code serves the tests, the benchmarks and the command-line clients.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

import numpy as np
import sphn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SAMPLE_RATE = 24000
FRAME_SIZE = 1920
FRAME_SECONDS = FRAME_SIZE / SAMPLE_RATE

HANDSHAKE, AUDIO, TEXT, CONTROL, METADATA, ERROR, PING, TIMED_TEXT = range(8)


@dataclass
class Reply:
    """Everything the server sent in one conversation."""

    handshake: bytes | None = None
    metadata: dict | None = None
    ogg: bytearray = field(default_factory=bytearray)
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    text: list[str] = field(default_factory=list)
    timed_text: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    sent_samples: int = 0
    # time (monotonic) each send and each reply audio message was seen, for latency figures
    send_times: list[float] = field(default_factory=list)
    audio_times: list[float] = field(default_factory=list)

    def latencies(self) -> list[float]:
        """Seconds from sending input frame j + 1 to receiving reply frame j (the model answers frame
        j + 1's step with its frame j): the round trip through the network, the queue and one step."""
        received, sent = self.audio_times, self.send_times
        return [received[j] - sent[j + 1] for j in range(min(len(received), len(sent) - 1))]

    @property
    def monologue(self) -> str:
        return "".join(self.text) + "".join(piece for _, piece in self.timed_text)


def chat_url(base: str, **query: object) -> str:
    """`base` (ws://host:port) plus /api/chat and the query parameters."""
    url = base.rstrip("/")
    if not url.endswith("/api/chat"):
        url += "/api/chat"
    return f"{url}?{urlencode(query)}" if query else url


class Conversation:
    """One open session. Use `talk()` for the common case of streaming one clip.

    `on_audio` receives each decoded piece of the agent's audio (float32, 24 kHz), `on_text` each
    monologue piece, as they arrive."""

    def __init__(self, websocket, on_audio: Callable[[np.ndarray], None] | None = None,
                 on_text: Callable[[str], None] | None = None) -> None:
        self.ws = websocket
        self.on_audio = on_audio
        self.on_text = on_text
        self.reply = Reply()
        self._reader = sphn.OpusStreamReader(SAMPLE_RATE)
        self._writer = sphn.OpusStreamWriter(SAMPLE_RATE)
        self._pcm_parts: list[np.ndarray] = []
        self.started = asyncio.Event()

    async def receive_all(self) -> Reply:
        """Read messages until the server closes; decode the audio as it arrives."""
        try:
            async for message in self.ws:
                self._handle(message)
        except ConnectionClosed:
            pass
        finally:
            self.started.set()
            self.reply.close_code, self.reply.close_reason = self.ws.close_code, self.ws.close_reason or ""
            self.reply.pcm = np.concatenate(self._pcm_parts) if self._pcm_parts else self.reply.pcm
        return self.reply

    def _handle(self, message: bytes | str) -> None:
        if isinstance(message, str) or not message:
            self.reply.errors.append(f"unexpected message from server: {message!r}")
            return
        kind, payload = message[0], message[1:]
        if kind == HANDSHAKE:
            self.reply.handshake = bytes(message)
            self.started.set()
        elif kind == METADATA:
            self.reply.metadata = json.loads(payload)
        elif kind == AUDIO:
            self.reply.audio_times.append(time.monotonic())
            self.reply.ogg += payload
            pcm = self._reader.append_bytes(payload)
            if pcm.size:
                self._pcm_parts.append(pcm)
                if self.on_audio:
                    self.on_audio(pcm)
        elif kind in (TEXT, TIMED_TEXT):
            if kind == TIMED_TEXT:
                (frame,) = struct.unpack("<I", payload[:4])
                piece = payload[4:].decode("utf-8")
                self.reply.timed_text.append((frame, piece))
            else:
                piece = payload.decode("utf-8")
                self.reply.text.append(piece)
            if self.on_text:
                self.on_text(piece)
        elif kind == ERROR:
            self.reply.errors.append(payload.decode("utf-8"))

    async def send_pcm(self, pcm: np.ndarray) -> None:
        """Encode `pcm` (float32, 24 kHz mono) and send whatever Ogg pages are ready."""
        ogg = self._writer.append_pcm(np.ascontiguousarray(pcm, dtype=np.float32))
        self.reply.sent_samples += len(pcm)
        if len(ogg):
            self.reply.send_times.append(time.monotonic())
            await self.ws.send(bytes([AUDIO]) + ogg)

    async def stream(self, pcm: np.ndarray, realtime: bool = True) -> None:
        """Send `pcm` frame by frame, paced by the audio clock unless `realtime` is False."""
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), FRAME_SIZE)):
            frame = pcm[offset:offset + FRAME_SIZE]
            if len(frame) < FRAME_SIZE:
                frame = np.pad(frame, (0, FRAME_SIZE - len(frame)))
            if realtime:
                await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - time.monotonic()))
            await self.send_pcm(frame)


async def talk(url: str, pcm: np.ndarray, realtime: bool = True, settle_seconds: float = 1.5,
               open_timeout: float = 30.0) -> Reply:
    """Stream `pcm` to the server at `url` (a full /api/chat URL), wait for the replies to settle,
    close, and return what came back. A refused session returns its error and close code."""
    async with connect(url, open_timeout=open_timeout, max_size=None) as websocket:
        conversation = Conversation(websocket)
        receiving = asyncio.ensure_future(conversation.receive_all())
        await conversation.started.wait()
        if conversation.reply.handshake is not None:
            await conversation.stream(pcm, realtime)
            await _settle(conversation, pcm, settle_seconds)
            await websocket.close()
        return await receiving


async def _settle(conversation: Conversation, pcm: np.ndarray, seconds: float) -> None:
    """Wait until the reply is about as long as what was sent, or `seconds` pass without progress."""
    sent_frames = -(-len(pcm) // FRAME_SIZE)
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < seconds:
        count = len(conversation.reply.audio_times)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if conversation.ws.close_code is not None:
            return
        if count >= sent_frames - 1:
            return
        await asyncio.sleep(0.02)
