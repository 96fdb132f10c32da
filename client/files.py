"""`antiphon talk`: stream a sound file to a server and save the agent's reply and monologue."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import numpy as np
import sphn

from .chat import SAMPLE_RATE, chat_url, talk

SAMPLING_FLAGS = ("text_temperature", "text_topk", "audio_temperature", "audio_topk", "text_seed", "audio_seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8998", help="the server (ws:// or wss://)")
    parser.add_argument("--input", required=True, type=Path, help="speech to send (wav, mp3, ogg, flac…)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the agent's audio (wav)")
    parser.add_argument("--transcript", type=Path, help="where to write the agent's monologue (text)")
    parser.add_argument("--fast", action="store_true",
                        help="send without pacing; the server still takes one frame per 80 ms tick")
    add_sampling_arguments(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    for name in SAMPLING_FLAGS:
        kind = float if "temperature" in name else int
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help="sampling (server default)")


def sampling_query(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name) for name in SAMPLING_FLAGS if getattr(args, name) is not None}


def read_mono(path: Path) -> np.ndarray:
    try:
        audio, _ = sphn.read(str(path), sample_rate=SAMPLE_RATE)
    except Exception as exc:  # sphn reports unreadable files with assorted exception types
        raise SystemExit(f"antiphon: error: cannot read {path}: {exc}") from None
    return np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)


def run(args: argparse.Namespace) -> None:
    pcm = read_mono(args.input)
    url = chat_url(args.url, **sampling_query(args))
    try:
        reply = asyncio.run(talk(url, pcm, realtime=not args.fast))
    except OSError as exc:
        raise SystemExit(f"antiphon: error: cannot reach {args.url}: {exc}") from None
    if reply.handshake is None:
        reason = "; ".join(reply.errors) or f"closed with code {reply.close_code}"
        raise SystemExit(f"antiphon: error: the server refused the session: {reason}")
    sphn.write_wav(str(args.output), reply.pcm, SAMPLE_RATE)
    if args.transcript:
        args.transcript.write_text(reply.monologue.strip() + "\n")
    latencies = [1000 * value for value in reply.latencies()]
    summary = (f"sent {len(pcm) / SAMPLE_RATE:.2f} s, received {len(reply.pcm) / SAMPLE_RATE:.2f} s "
               f"-> {args.output}")
    if latencies:
        summary += f"; round trip median {statistics.median(latencies):.0f} ms"
    print(summary, file=sys.stderr)
    for error in reply.errors:
        print(f"server error: {error}", file=sys.stderr)
