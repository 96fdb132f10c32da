"""Engine frame time against the number of live sessions, with moshi's own modules stepped the same way
in the same process as the reference. Run: .venv/bin/python benchmarks/cpu_sessions.py

Each row steps N sessions of real speech (espeak-ng) through Antiphon's engine (batched Mimi encode,
LMGen step with per-slot sampling, Mimi decode, host copy) and then through moshi's modules alone
(batch N, one temperature, no slots), and reports the median and 99th percentile frame times. A frame
is 80 ms of audio: a p99 under 80 ms keeps every session real time.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import sphn
import torch

from antiphon.models.loader import load_model
from antiphon.server.bench import run_reference
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from report import command_line

FRAME_MS = 80.0
RESULTS = Path(__file__).parent / "results"


def speech_frames(count: int, frame_size: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        text = "Hello there. What is three plus four? Please spell the word cat for me. " * 4
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        audio, _ = sphn.read(str(wav), sample_rate=24000)
    audio = np.resize(audio[0].astype(np.float32), count * frame_size)
    return audio.reshape(count, frame_size)


def percentiles(times: list[float]) -> tuple[float, float]:
    values = np.array(times) * 1000
    return float(np.median(values)), float(np.percentile(values, 99))


def time_engine(engine: Engine, frames: np.ndarray, sessions: int, warmup: int) -> list[float]:
    stepping = np.zeros(engine.slots, dtype=bool)
    stepping[:sessions] = True
    params = SamplingParams()
    times = []
    for index, frame in enumerate(frames):
        pcm = np.zeros((engine.slots, engine.frame_size), dtype=np.float32)
        pcm[:sessions] = frame
        joining = {slot: params for slot in range(sessions)} if index == 0 else None
        started = time.perf_counter()
        engine.step(pcm, stepping, joining)
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="test-small")
    parser.add_argument("--sessions", default="1,2,3,4")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--output", default=str(RESULTS / "cpu_sessions"))
    parser.add_argument("--compile", action="store_true", help="also time the compiled engine (`--compile`)")
    args = parser.parse_args()
    counts = [int(n) for n in args.sessions.split(",")]
    frames = speech_frames(args.frames, 1920)
    rows = []
    for sessions in counts:
        engine = Engine(load_model(args.model, random_weights=True), slots=sessions)
        ours = percentiles(time_engine(engine, frames, sessions, args.warmup))
        engine.close()
        if args.compile:
            engine = Engine(load_model(args.model, random_weights=True), slots=sessions, compile_backend="inductor")
            engine.warmup()
            compiled = percentiles(time_engine(engine, frames, sessions, args.warmup))
            engine.close()
        reference_ms = run_reference(load_model(args.model, random_weights=True), sessions, frames,
                                     args.warmup)["frame_ms"]
        reference = reference_ms["p50"], reference_ms["p99"]
        row = {"sessions": sessions, "antiphon_p50_ms": ours[0], "antiphon_p99_ms": ours[1],
               "moshi_p50_ms": reference[0], "moshi_p99_ms": reference[1],
               "ratio_p50": ours[0] / reference[0], "real_time": ours[1] < FRAME_MS}
        if args.compile:
            row.update(compiled_p50_ms=compiled[0], compiled_p99_ms=compiled[1])
        rows.append(row)
    extra = " compiled p50 ms | compiled p99 ms |" if args.compile else ""
    header = ("| sessions | Antiphon p50 ms | Antiphon p99 ms | moshi p50 ms | moshi p99 ms | p50 ratio "
              f"| real time (p99 < 80 ms) |{extra}\n|---|---|---|---|---|---|---|{'---|---|' if extra else ''}")
    lines = [f"| {r['sessions']} | {r['antiphon_p50_ms']:.1f} | {r['antiphon_p99_ms']:.1f} | "
             f"{r['moshi_p50_ms']:.1f} | {r['moshi_p99_ms']:.1f} | {r['ratio_p50']:.2f} | "
             f"{'yes' if r['real_time'] else 'no'} |"
             + (f" {r['compiled_p50_ms']:.1f} | {r['compiled_p99_ms']:.1f} |" if args.compile else "")
             for r in rows]
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}, model {args.model} (random weights), {args.frames} frames "
               f"({args.warmup} warm-up frames not counted)")
    command = command_line()
    table = "\n".join([header, *lines])
    print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(
        f"# Engine frame time on CPU\n\n{machine}\n\nCommand: `{command}`\n\n{table}\n")
    output.with_suffix(".json").write_text(json.dumps({"machine": machine, "command": command,
                                                       "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
