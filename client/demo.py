"""`antiphon demo`: talk to a server from this machine's microphone and speakers.

PortAudio (through `sounddevice`, imported only here) owns the audio thread: its callback hands
microphone blocks to the asyncio loop and plays whatever reply audio has arrived, padding with silence
when none has (a jitter buffer of its own would only add delay to a local loop).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections import deque

import numpy as np
from websockets.asyncio.client import connect

from .chat import FRAME_SIZE, SAMPLE_RATE, Conversation, chat_url
from .files import add_sampling_arguments, sampling_query


class NoAudioDevice(Exception):
    """No usable microphone or speaker; the message says what is missing."""


def load_sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise NoAudioDevice(f"no audio system: {exc} (install PortAudio, e.g. Debian's libportaudio2, "
                            "and the sounddevice package)") from None
    return sounddevice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8998", help="the server (ws:// or wss://)")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--input-device", help="microphone: index or name (default: the system's)")
    parser.add_argument("--output-device", help="speaker: index or name (default: the system's)")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    add_sampling_arguments(parser)


def resample(samples: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Linear interpolation: enough for a speech demo, and free of extra dependencies."""
    if source_rate == target_rate or not len(samples):
        return samples
    count = int(round(len(samples) * target_rate / source_rate))
    positions = np.arange(count) * (source_rate / target_rate)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


class AudioBridge:
    """Moves audio between the PortAudio callback thread and the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, device_rate: float) -> None:
        self.loop = loop
        self.device_rate = device_rate
        self.microphone: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._speaker: deque[float] = deque(maxlen=int(SAMPLE_RATE * 2))  # never more than 2 s behind
        self._lock = threading.Lock()
        self.underruns = 0

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time, status) -> None:
        block = resample(indata[:, 0].astype(np.float32), self.device_rate, SAMPLE_RATE)
        self.loop.call_soon_threadsafe(self.microphone.put_nowait, block)
        wanted = int(round(frames * SAMPLE_RATE / self.device_rate))
        with self._lock:
            available = min(wanted, len(self._speaker))
            played = np.array([self._speaker.popleft() for _ in range(available)], dtype=np.float32)
        if available < wanted:
            self.underruns += available > 0
            played = np.pad(played, (0, wanted - available))
        outdata[:, 0] = resample(played, SAMPLE_RATE, self.device_rate)[:frames]

    def play(self, pcm: np.ndarray) -> None:
        with self._lock:
            self._speaker.extend(pcm.tolist())


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


async def converse(args: argparse.Namespace, sounddevice) -> Conversation:
    loop = asyncio.get_running_loop()
    input_device, output_device = _device(args.input_device), _device(args.output_device)
    try:
        info = sounddevice.query_devices(input_device, "input")
        sounddevice.query_devices(output_device, "output")
    except (ValueError, sounddevice.PortAudioError) as exc:
        raise NoAudioDevice(f"no usable audio device: {exc} (see --list-devices)") from None
    rate = SAMPLE_RATE
    try:
        sounddevice.check_input_settings(input_device, channels=1, samplerate=SAMPLE_RATE)
        sounddevice.check_output_settings(output_device, channels=1, samplerate=SAMPLE_RATE)
    except (ValueError, sounddevice.PortAudioError):
        rate = float(info["default_samplerate"])
    bridge = AudioBridge(loop, rate)
    stream = sounddevice.Stream(samplerate=rate, blocksize=int(rate * FRAME_SIZE / SAMPLE_RATE), channels=1,
                                dtype="float32", device=(input_device, output_device), callback=bridge.callback)
    async with connect(chat_url(args.url, **sampling_query(args)), max_size=None) as websocket:
        conversation = Conversation(websocket, on_audio=bridge.play,
                                    on_text=lambda piece: print(piece, end="", flush=True))
        receiving = asyncio.ensure_future(conversation.receive_all())
        await conversation.started.wait()
        if conversation.reply.handshake is None:
            await receiving
            raise NoAudioDevice("the server refused the session: " + "; ".join(conversation.reply.errors))
        print(f"connected to {args.url}: speak (Ctrl-C to stop)", file=sys.stderr)
        started = time.monotonic()
        with stream:
            pending = np.zeros(0, dtype=np.float32)
            while not receiving.done() and (args.seconds is None or time.monotonic() - started < args.seconds):
                try:
                    block = await asyncio.wait_for(bridge.microphone.get(), 0.5)
                except asyncio.TimeoutError:
                    continue
                pending = np.concatenate([pending, block])
                while len(pending) >= FRAME_SIZE:
                    await conversation.send_pcm(pending[:FRAME_SIZE])
                    pending = pending[FRAME_SIZE:]
                    _report_latency(conversation)
        await websocket.close()
        await receiving
    return conversation


def _report_latency(conversation: Conversation) -> None:
    latencies = conversation.reply.latencies()
    if latencies and len(latencies) % 25 == 0:
        recent = statistics.median(latencies[-25:]) * 1000
        print(f"\n[round trip {recent:.0f} ms]", file=sys.stderr)


def run(args: argparse.Namespace) -> None:
    try:
        sounddevice = load_sounddevice()
        if args.list_devices:
            devices = sounddevice.query_devices()
            print(devices if len(devices) else "no audio devices found")
            return
        conversation = asyncio.run(converse(args, sounddevice))
    except NoAudioDevice as exc:
        raise SystemExit(f"antiphon: error: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"antiphon: error: cannot reach {args.url}: {exc}") from None
    except KeyboardInterrupt:
        return
    print(f"\n{len(conversation.reply.pcm) / SAMPLE_RATE:.1f} s of reply", file=sys.stderr)
