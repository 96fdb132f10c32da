"""The server's per-session audio coding: sphn's Ogg Opus (holds the GIL) against Antiphon's libopus
through ctypes (lets go of it), one frame at a time as sessions code it, on one thread and spread over
threads. Run: .venv/bin/python benchmarks/opus_threads.py

A frame here is one session's 80 ms: decoding the client's Ogg pages and encoding the reply's.
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import sphn

from antiphon.server.ogg_opus import OggOpusReader, OggOpusWriter
from report import command_line

RESULTS = Path(__file__).parent / "results"
FRAME = 1920


def client_stream(pcm: np.ndarray) -> list[bytes]:
    """What a client sends: sphn's Ogg Opus, one message per 80 ms frame."""
    writer = sphn.OpusStreamWriter(24000)
    return [writer.append_pcm(pcm[i:i + FRAME]) for i in range(0, len(pcm), FRAME)]


def session(codec: str, messages: list[bytes], pcm: np.ndarray) -> None:
    """One session's coding: decode each message, encode each reply frame."""
    if codec == "sphn":
        reader, writer = sphn.OpusStreamReader(24000), sphn.OpusStreamWriter(24000)
    else:
        reader, writer = OggOpusReader(), OggOpusWriter()
    for index, message in enumerate(messages):
        reader.append_bytes(message)
        writer.append_pcm(pcm[index * FRAME:(index + 1) * FRAME])


def frames_per_second(codec: str, sessions: int, threads: int, messages: list[bytes], pcm: np.ndarray) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: session(codec, messages, pcm), range(sessions)))
    return sessions * len(messages) / (time.perf_counter() - began)


def main() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(FRAME * 250) / 24000
    pcm = (0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
           + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    messages = client_stream(pcm)
    cores = os.cpu_count() or 1
    rows = []
    for codec in ("sphn", "antiphon"):
        for threads in sorted({1, cores}):
            best = max(frames_per_second(codec, 2 * cores, threads, messages, pcm) for _ in range(3))
            rows.append({"codec": codec, "threads": threads, "frames_per_second": best,
                         "ms_per_frame": 1000 / best})
    header = "| codec | threads | session frames/s | ms a frame (decode + encode) |\n|---|---|---|---|"
    lines = [f"| {r['codec']} | {r['threads']} | {r['frames_per_second']:.0f} | {r['ms_per_frame']:.3f} |"
             for r in rows]
    machine = f"{platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}"
    command = command_line()
    table = "\n".join([header, *lines])
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "opus_threads.md").write_text(
        f"# Per-session Opus coding\n\n{machine}; best of three runs of {2 * cores} sessions x "
        f"{len(messages)} frames.\n\nCommand: `{command}`\n\n{table}\n\n"
        f"Real time is 12.5 frames/s a session: the frames/s divided by 12.5 is how many sessions' audio "
        f"the server can code.\n")
    (RESULTS / "opus_threads.json").write_text(json.dumps({"machine": machine, "command": command,
                                                           "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
