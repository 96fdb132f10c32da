"""Parity on a GPU: each batched slot's greedy tokens against moshi's one-session reference, while
sessions join, leave, reuse slots and stall, with the engine's frame graphs and without. Run on a CUDA
machine:

    python benchmarks/gpu_parity.py --dtype float32 --dtype bfloat16

A GPU picks its kernels by shape, and kernels for different batch sizes round differently, so the
reference is moshi's one-session loop run at the engine's batch size (the session in every row), where
a slot must agree token for token; the agreement with the batch-1 loop is reported beside it. Prints,
per session, how many text and audio tokens equal the reference's and where they first differ, and
writes the table to benchmarks/results/gpu_parity.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from antiphon.models.loader import load_model
from antiphon.models.reference import Trace, reference_run
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from report import command_line

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)
RESULTS = Path(__file__).parent / "results"


def voice_like(seconds: float, seed: int) -> list[np.ndarray]:
    """Gliding harmonic tones under noise with a syllable-rate envelope, cut into 80 ms frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 24000)) / 24000
    f0 = 100 + 150 * rng.random()
    phase = 2 * math.pi * np.cumsum(f0 * (1 + 0.3 * np.sin(2 * math.pi * 0.6 * t))) / 24000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * (2 + 4 * rng.random()) * t)
    pcm = (0.1 * envelope * (voiced + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)
    return list(pcm[: len(pcm) // 1920 * 1920].reshape(-1, 1920))


def run_batched(engine: Engine, sessions: dict[str, list[np.ndarray]], joins: dict[str, tuple[int, int]],
                stalls: dict[str, set[int]]) -> dict[str, Trace]:
    traces = {name: Trace([], [], []) for name in sessions}
    sent = dict.fromkeys(sessions, 0)
    holder: list[str | None] = [None] * engine.slots
    joined: set[str] = set()
    ticks = max(tick + len(sessions[name]) + len(stalls.get(name, ())) for name, (tick, _) in joins.items())
    for tick in range(ticks + 2):
        for name, (at, slot) in joins.items():
            if at == tick:
                holder[slot] = name
        pcm = np.zeros((engine.slots, engine.frame_size), dtype=np.float32)
        stepping = np.zeros(engine.slots, dtype=bool)
        joining = {}
        for slot, name in enumerate(holder):
            if name is None or sent[name] >= len(sessions[name]) or tick in stalls.get(name, ()):
                continue
            pcm[slot], stepping[slot] = sessions[name][sent[name]], True
            sent[name] += 1
            if name not in joined:
                joining[slot] = GREEDY
                joined.add(name)
        result = engine.step(pcm, stepping, joining)
        for slot, name in enumerate(holder):
            if name is not None and result.produced[slot]:
                traces[name].text.append(int(result.text[slot]))
                traces[name].audio.append(result.audio[slot])
    return traces


def compare(got: Trace, want: Trace) -> dict:
    steps = min(len(got.text), len(want.text))
    text_equal = [got.text[i] == want.text[i] for i in range(steps)]
    audio_equal = [bool(np.array_equal(got.audio[i], want.audio[i])) for i in range(steps)]
    first = next((i for i in range(steps) if not (text_equal[i] and audio_equal[i])), None)
    return {"steps": steps, "lengths_match": len(got.text) == len(want.text),
            "text_equal": sum(text_equal), "audio_frames_equal": sum(audio_equal), "first_difference": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="test-small")
    parser.add_argument("--dtype", action="append", default=None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile", action="store_true", help="add the compiled engine's agreement")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_parity.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    slots = 4
    sessions = {name: voice_like(args.seconds, seed) for seed, name in enumerate("abcde")}
    n = len(sessions["a"])
    joins = {"a": (0, 0), "b": (3, 1), "c": (5, 2), "d": (9, 3), "e": (5 + n + 8, 2)}
    stalls = {"b": set(range(10, 16)), "c": {8, 9, 12}, "d": {30}}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"Device: {device_name}, torch {torch.__version__}, model {args.model} "
             f"(random weights, seed 0), {args.seconds:g} s per session, {slots} slots.", "",
             f"| dtype | engine | session | steps | against moshi's one-session loop at batch {slots}: text / "
             "audio frames equal, first difference | against it at batch 1: text / audio frames equal, first "
             "difference |", "|---|---|---|---|---|---|"]
    graphs_differ = False
    for dtype_name in args.dtype or ["float32", "bfloat16"]:
        dtype = getattr(torch, dtype_name)
        model = load_model(args.model, device=device, dtype=dtype, random_weights=True)
        references = {name: (reference_run(model, frames, batch=slots), reference_run(model, frames))
                      for name, frames in sessions.items()}
        engines: dict[str, dict] = {"frame graphs": {"frame_graphs": True},
                                    "moshi's graphs, eager glue": {"frame_graphs": False}}
        if args.compile:  # reported, not yet required to match: reductions may sum in another order
            engines["compiled, frame graphs"] = {"compile_backend": "inductor"}
        for label, options in engines.items():
            engine = Engine(model, slots=slots, **options)
            engine.warmup()
            traces = run_batched(engine, sessions, joins, stalls)
            engine.close()
            for name, (at_batch, alone) in references.items():
                same_batch, batch_one = compare(traces[name], at_batch), compare(traces[name], alone)
                differs = same_batch["first_difference"] is not None or not same_batch["lengths_match"]
                graphs_differ |= label == "frame graphs" and differs
                lines.append(f"| {dtype_name} | {label} | {name} | {same_batch['steps']} | "
                             f"{agreement(same_batch)} | {agreement(batch_one)} |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = command_line()
    args.out.write_text(f"# Greedy parity on GPU\n\nCommand: `{command}`\n\n{text}\n")
    if graphs_differ:
        sys.exit("with frame graphs, a session's tokens differ from moshi's at the same batch size")


def agreement(row: dict) -> str:
    first = "none" if row["first_difference"] is None else f"step {row['first_difference']}"
    length = "" if row["lengths_match"] else " (lengths differ)"
    return f"{row['text_equal']} / {row['audio_frames_equal']} of {row['steps']}, {first}{length}"


if __name__ == "__main__":
    main()
