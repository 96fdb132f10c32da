"""One client connection on `/api/chat`: Opus in and out, the link to its engine slot, its lifecycle.

Every way a session can end is a `SessionEnd`: the error text (sent as a 0x05 message) and the close
code. Nothing a client sends can reach another session: its frames go only into its own inbox.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import protocol
from .access import AccessPolicy
from .codec_threads import CodecThreads
from .lifecycle import Lifecycle
from .loop_mailbox import LoopMailbox
from .metrics import Metrics
from .ogg_opus import OggOpusReader, OggOpusWriter
from .params import SamplingParams
from .protocol import CloseCode, Kind, ProtocolError
from .scheduler import Scheduler, SlotLink, SlotOutput

logger = logging.getLogger(__name__)

# What a send or receive raises once the client's connection is gone (closed or dropped).
_CONNECTION_GONE = (WebSocketDisconnect, OSError)


@dataclass(frozen=True)
class SessionLimits:
    max_message_bytes: int = 64 * 1024  # a second of Opus is ~4 KiB; this leaves room for bursts
    idle_seconds: float = 10.0          # no audio for this long ends the session
    outbox_frames: int = 50             # four seconds of replies waiting for a client that is not reading
    close_seconds: float = 2.0          # how long a close handshake may take before the socket is dropped
    max_messages_per_second: int = 100  # clients send one audio message per 20-80 ms


@dataclass
class ServerContext:
    """What every session of one server shares."""

    scheduler: Scheduler
    metrics: Metrics
    model_name: str
    untrained: bool
    limits: SessionLimits = field(default_factory=SessionLimits)
    defaults: SamplingParams = field(default_factory=SamplingParams)
    access: AccessPolicy = field(default_factory=AccessPolicy)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    codec_threads: CodecThreads = field(default_factory=CodecThreads)  # Opus coding, off the event loop
    mailboxes: dict[asyncio.AbstractEventLoop, LoopMailbox] = field(default_factory=dict)

    def mailbox(self, loop: asyncio.AbstractEventLoop) -> LoopMailbox:
        """The engine thread's way into `loop`, shared by the loop's sessions."""
        if loop not in self.mailboxes:
            self.mailboxes[loop] = LoopMailbox(loop)
        return self.mailboxes[loop]


class SessionLog(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[session {self.extra['session']}] {msg}", kwargs


class Session:
    def __init__(self, websocket: WebSocket, context: ServerContext) -> None:
        self.ws = websocket
        self.context = context
        self.scheduler = context.scheduler
        self.metrics = context.metrics
        self.limits = context.limits
        self.id = secrets.token_hex(6)
        self.log = SessionLog(logger, {"session": self.id})
        self.frame_size = self.scheduler.engine.frame_size
        self.sample_rate = self.scheduler.engine.sample_rate
        self.timed_text = protocol.wants_timed_text(websocket.query_params)
        self.client = websocket.client.host if websocket.client else "unknown"
        self._loop = asyncio.get_running_loop()
        self._mailbox = context.mailbox(self._loop)
        self._outbox: asyncio.Queue[SlotOutput] = asyncio.Queue(maxsize=self.limits.outbox_frames)
        self._ended: asyncio.Future[ProtocolError] = self._loop.create_future()

    async def run(self) -> None:
        await self.ws.accept()
        try:
            if self.context.lifecycle.draining:
                raise ProtocolError("the server is shutting down, try again later", CloseCode.TRY_AGAIN_LATER,
                                    kind="shutting_down")
            params = protocol.parse_sampling(self.ws.query_params, self.context.defaults)
            self.context.access.admit(self.ws.headers, self.ws.query_params, self.client)
        except ProtocolError as refusal:
            await self._refuse(refusal)
            return
        try:
            await self._run_admitted(params)
        finally:
            self.context.access.leave(self.client)

    async def _run_admitted(self, params: SamplingParams) -> None:
        link = SlotLink(params, deliver=self._deliver_threadsafe, fail=self._fail_threadsafe)
        slot = self.scheduler.acquire(link)
        if slot is None:
            if self.scheduler.failure is not None:
                refusal = ProtocolError(self.scheduler.failure, CloseCode.TRY_AGAIN_LATER, kind="engine_failed")
            else:
                refusal = ProtocolError(f"server full: all {self.scheduler.slots} slots are busy, try again "
                                        "later", CloseCode.TRY_AGAIN_LATER, kind="full")
            await self._refuse(refusal)
            return
        self.metrics.sessions.inc()
        self.metrics.sessions_active.inc()
        self.context.lifecycle.add(self)
        self.log.info("started in slot %d with %s", slot, params)
        try:
            end = await self._serve(link, params)
        finally:
            self.scheduler.release(slot, link)
            self.metrics.sessions_active.dec()
            self.context.lifecycle.discard(self)
        if end.code != CloseCode.NORMAL:
            self.metrics.errors.labels(end.kind).inc()
        self.log.info("ended: %s (%d)", end, end.code)
        await self._close(end)

    async def _refuse(self, refusal: ProtocolError) -> None:
        """Turn a connection away before it holds a slot: counted by reason, logged, told why."""
        self.metrics.refused.labels(refusal.kind).inc()
        self.log.info("refused %s: %s", self.client, refusal)
        await self._close(refusal)

    def warn_shutdown(self, seconds: float) -> None:
        message = protocol.error(f"the server is shutting down: this session ends within {seconds:g} s")
        asyncio.ensure_future(self._send_quietly(message))

    async def _send_quietly(self, message: bytes) -> None:
        """A notice to a client that may already be gone: losing it is fine."""
        try:
            await self.ws.send_bytes(message)
        except (*_CONNECTION_GONE, RuntimeError):
            pass

    def end_for_shutdown(self) -> None:
        self._end(ProtocolError("the server shut down", CloseCode.GOING_AWAY, kind="shutdown"))

    async def _serve(self, link: SlotLink, params: SamplingParams) -> ProtocolError:
        try:
            await self._send_to_client(protocol.handshake())
            await self._send_to_client(protocol.metadata({
                "session_id": self.id,
                "model": self.context.model_name,
                "untrained": self.context.untrained,
                "sampling": asdict(params),
                "sample_rate": self.sample_rate,
                "frame_size": self.frame_size,
                "text_frames": self.timed_text,
            }))
        except _CONNECTION_GONE:
            return _connection_lost()
        except ProtocolError as lost:
            return lost
        receiver, sender = asyncio.ensure_future(self._receive(link)), asyncio.ensure_future(self._send())
        tasks = [receiver, sender]
        try:
            done, _ = await asyncio.wait([*tasks, self._ended], return_when=asyncio.FIRST_COMPLETED)
            if self._ended in done:
                return self._ended.result()
            if receiver not in done and isinstance(sender.exception(), _CONNECTION_GONE):
                # A reply that finds the connection gone: the receiver reads why, a close or a drop.
                await asyncio.wait([receiver], timeout=self.limits.close_seconds)
                if not receiver.done():
                    return _connection_lost()
            first = receiver if receiver.done() else sender
            exc = first.exception()
            if isinstance(exc, ProtocolError):
                return exc
            if exc is not None and not isinstance(exc, _CONNECTION_GONE):
                raise exc
            return ProtocolError("client closed the connection", CloseCode.NORMAL)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, link: SlotLink) -> None:
        reader = OggOpusReader()
        pending = np.zeros(0, dtype=np.float32)
        last_audio = time.monotonic()
        window_start, window_count = last_audio, 0
        while True:
            timeout = last_audio + self.limits.idle_seconds - time.monotonic()
            try:
                message = await asyncio.wait_for(self.ws.receive(), max(timeout, 0.0))
            except asyncio.TimeoutError:
                raise ProtocolError(f"no audio for {self.limits.idle_seconds:g} s, closing an idle session",
                                    CloseCode.POLICY, kind="idle") from None
            if message["type"] == "websocket.disconnect":
                if message.get("code", CloseCode.NORMAL) in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
                    return  # the client said goodbye
                raise _connection_lost()
            data = message.get("bytes")
            if data is None:
                raise ProtocolError("text messages are not part of the protocol: send binary messages "
                                    "whose first byte is the kind", CloseCode.UNSUPPORTED_DATA)
            kind, payload = protocol.parse_client_message(data, self.limits.max_message_bytes)
            now = time.monotonic()
            if now - window_start >= 1.0:
                window_start, window_count = now, 0
            window_count += 1
            if window_count > self.limits.max_messages_per_second:
                raise ProtocolError(f"more than {self.limits.max_messages_per_second} messages a second",
                                    CloseCode.POLICY, kind="rate_limited")
            if kind is not Kind.AUDIO:
                continue  # control actions and pings keep no state here
            try:
                pcm = await self.context.codec_threads.run(self._mailbox, reader.append_bytes, payload)
            except ValueError as exc:
                raise ProtocolError(f"audio is not a valid Ogg Opus stream ({exc})",
                                    CloseCode.INVALID_PAYLOAD) from None
            last_audio = time.monotonic()
            pending = np.concatenate([pending, pcm]) if pending.size else pcm
            while pending.size >= self.frame_size:
                frame, pending = pending[:self.frame_size], pending[self.frame_size:]
                await self._push(link, frame)

    async def _push(self, link: SlotLink, frame: np.ndarray) -> None:
        """Hand a frame to the engine; while the inbox is full, stop reading (backpressure, no loss)."""
        while True:
            try:
                self.scheduler.put(link, frame)
                return
            except queue.Full:
                await asyncio.sleep(self.scheduler.frame_seconds / 4)

    async def _send(self) -> None:
        writer = OggOpusWriter()
        while True:
            output = await self._outbox.get()
            ogg = await self.context.codec_threads.run(self._mailbox, writer.append_pcm, output.pcm)
            if len(ogg):
                await self._send_to_client(protocol.audio(ogg))
            if output.text:
                message = (protocol.timed_text(output.step, output.text) if self.timed_text
                           else protocol.text(output.text))
                await self._send_to_client(message)

    async def _send_to_client(self, message: bytes) -> None:
        try:
            await self.ws.send_bytes(message)
        except RuntimeError as exc:
            # The WebSocket server refuses sends once it has given up on the connection itself: the
            # client stopped answering pings or broke the protocol, and its close may never come.
            raise _connection_lost() from exc

    def _deliver_threadsafe(self, output: SlotOutput) -> None:
        self._mailbox.post(self._deliver, output)

    def _deliver(self, output: SlotOutput) -> None:
        if self._ended.done():
            return
        try:
            self._outbox.put_nowait(output)
        except asyncio.QueueFull:
            self._end(ProtocolError(f"client is not reading: {self.limits.outbox_frames} frames of reply "
                                    "are waiting", CloseCode.POLICY, kind="not_reading"))

    def _fail_threadsafe(self, message: str) -> None:
        self._mailbox.post(self._end, ProtocolError(message, CloseCode.GOING_AWAY, kind="engine_failed"))

    def _end(self, reason: ProtocolError) -> None:
        if not self._ended.done():
            self._ended.set_result(reason)

    async def _close(self, end: ProtocolError) -> None:
        """Send the error (if any) and close; a client that does not take it within the limit is dropped."""
        async def close() -> None:
            if end.code != CloseCode.NORMAL:
                await self.ws.send_bytes(protocol.error(str(end)))
            await self.ws.close(code=int(end.code), reason=_close_reason(str(end)))
        try:
            await asyncio.wait_for(close(), self.limits.close_seconds)
        except (asyncio.TimeoutError, *_CONNECTION_GONE, RuntimeError):
            pass


def _connection_lost() -> ProtocolError:
    return ProtocolError("the connection was lost without a close: the client vanished, stopped answering "
                         "pings or broke the WebSocket protocol", CloseCode.GOING_AWAY, kind="connection_lost")


def _close_reason(text: str) -> str:
    """Close reasons are limited to 123 bytes of UTF-8."""
    encoded = text.encode("utf-8")[:123]
    return encoded.decode("utf-8", errors="ignore")
