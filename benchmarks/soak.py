"""Soak: every slot busy for a long time on CPU; resident memory and tick time over time.

    .venv/bin/python benchmarks/soak.py --minutes 30

Starts `antiphon serve` (test-small, random weights) with N slots, keeps N real-time sessions of looping
espeak-ng speech going, scrapes the server's resident memory and its tick-time histogram every
`--every` seconds, and writes benchmarks/results/soak.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import sphn
from websockets.asyncio.client import connect

from antiphon.client.chat import FRAME_SECONDS, FRAME_SIZE, Conversation, chat_url
from report import command_line

RESULTS = Path(__file__).parent / "results"


def speech() -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "Hello there. What is three plus four? Please spell the "
                        "word cat. Count from one to ten. Is the sky blue? Thank you, goodbye."], check=True)
        audio, _ = sphn.read(str(wav), sample_rate=24000)
    return np.concatenate([audio[0], np.zeros(24000)]).astype(np.float32)


async def session(base: str, clip: np.ndarray, deadline: float) -> Conversation:
    async with connect(chat_url(base), max_size=None) as ws:
        conversation = Conversation(ws)
        receiving = asyncio.ensure_future(conversation.receive_all())
        await conversation.started.wait()
        start, index = time.monotonic(), 0
        while time.monotonic() < deadline and not receiving.done():
            offset = (index * FRAME_SIZE) % (len(clip) - FRAME_SIZE)
            await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - time.monotonic()))
            await conversation.send_pcm(clip[offset:offset + FRAME_SIZE])
            conversation.reply.pcm = conversation.reply.pcm[:0]  # keep the client's own memory flat
            index += 1
        await ws.close()
        await receiving
        return conversation


def scrape(http: str, pid: int) -> dict:
    text = urllib.request.urlopen(f"{http}/metrics", timeout=5).read().decode()
    def value(name: str) -> float:
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0
    buckets = [(float(le), float(count)) for le, count in
               re.findall(r'^antiphon_tick_seconds_bucket\{le="([^"+]+)"\} (\S+)$', text, re.MULTILINE)]
    rss_kib = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    return {"time": time.monotonic(), "rss_mib": rss_kib / 1024, "tick_sum": value("antiphon_tick_seconds_sum"),
            "tick_count": value("antiphon_tick_seconds_count"), "late": value("antiphon_late_frames_total"),
            "overrun": value("antiphon_overrun_ticks_total"), "buckets": buckets}


def interval_stats(before: dict, after: dict) -> dict:
    ticks = after["tick_count"] - before["tick_count"]
    counts = [(le, a - b) for (le, a), (_, b) in zip(after["buckets"], before["buckets"])]
    p99 = next((le for le, count in counts if ticks and count >= 0.99 * ticks), float("inf"))
    p50 = next((le for le, count in counts if ticks and count >= 0.5 * ticks), float("inf"))
    return {"minute": round((after["time"] - START) / 60, 2), "rss_mib": round(after["rss_mib"], 1),
            "tick_mean_ms": round(1000 * (after["tick_sum"] - before["tick_sum"]) / max(ticks, 1), 2),
            "tick_p50_le_ms": p50 * 1000, "tick_p99_le_ms": p99 * 1000, "ticks": int(ticks),
            "late_frames": int(after["late"] - before["late"]), "overrun_ticks": int(after["overrun"] - before["overrun"])}


START = time.monotonic()


def main() -> None:
    global START
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="test-small")
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8997)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "antiphon.server", "serve", "--model", args.model,
                               "--random-weights", "--slots", str(args.slots), "--port", str(args.port),
                               "--log-level", "warning"])
    http, base = f"http://127.0.0.1:{args.port}", f"ws://127.0.0.1:{args.port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{http}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    clip = speech()
    START = time.monotonic()
    deadline = START + args.minutes * 60
    samples = [scrape(http, server.pid)]
    rows = []

    async def run() -> list[Conversation]:
        sessions = asyncio.gather(*(session(base, clip, deadline) for _ in range(args.slots)))
        while time.monotonic() < deadline:
            await asyncio.sleep(args.every)
            samples.append(scrape(http, server.pid))
            rows.append(interval_stats(samples[-2], samples[-1]))
            print(json.dumps(rows[-1]), flush=True)
        return await sessions

    conversations = asyncio.run(run())
    server.terminate()
    server.wait(30)
    errors = [error for conversation in conversations for error in conversation.reply.errors]
    write_results(args, rows, errors)


def write_results(args: argparse.Namespace, rows: list[dict], errors: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    minutes = [row["minute"] for row in rows]
    figure, (memory, ticks) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    memory.plot(minutes, [row["rss_mib"] for row in rows], marker=".")
    memory.set_ylabel("server RSS (MiB)")
    memory.set_ylim(bottom=0)
    ticks.plot(minutes, [row["tick_mean_ms"] for row in rows], marker=".", label="mean")
    ticks.plot(minutes, [row["tick_p99_le_ms"] for row in rows], marker=".", label="p99 (bucket bound)")
    ticks.axhline(80, color="grey", linestyle="--", label="80 ms frame")
    ticks.set_ylabel("tick (ms)")
    ticks.set_xlabel("minutes")
    ticks.legend()
    figure.suptitle(f"Soak: {args.slots} busy slots, {args.model} on CPU, {args.minutes:g} min")
    figure.tight_layout()
    figure.savefig(RESULTS / "soak.png", dpi=100)
    command = command_line()
    summary = {"command": command, "slots": args.slots, "minutes": args.minutes, "rows": rows,
               "client_errors": errors}
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=1))
    first, last = rows[0], rows[-1]
    (RESULTS / "soak.md").write_text(
        f"# Soak\n\nCommand: `{command}`\n\n{args.slots} slots busy for {args.minutes:g} minutes (test-small, "
        f"random weights, this machine's CPU).\n\n| | first interval | last interval |\n|---|---|---|\n"
        f"| server RSS MiB | {first['rss_mib']} | {last['rss_mib']} |\n"
        f"| mean tick ms | {first['tick_mean_ms']} | {last['tick_mean_ms']} |\n"
        f"| p99 tick ms (bucket bound) | {first['tick_p99_le_ms']} | {last['tick_p99_le_ms']} |\n\n"
        f"Late frames in all: {sum(r['late_frames'] for r in rows)}; overrun ticks: "
        f"{sum(r['overrun_ticks'] for r in rows)}; client errors: {len(errors)}.\n\n![soak](soak.png)\n")


if __name__ == "__main__":
    main()
