"""Where one frame's time goes: the engine's step for N sessions, stage by stage and kernel by kernel.

Passes over the same speech, after warm-up (CUDA graphs captured):
1. the step as served, with the engine's frame graphs and with moshi's own graphs only (the glue between
   them eager): each step's wall time;
2. each stage (Mimi encode, LMGen step, Mimi decode, the copy back to the host) of the eager step, timed
   with the device synchronised around it: what each costs;
3. the frame-graphed step under torch.profiler: kernels per step and the device's busy time per step,
   against the wall time (the difference is the device waiting for the host), and the heaviest operators.
Prints a report and writes it to OUT.md. On a lent GPU: `source benchmarks/device_env.sh && python3
benchmarks/frame_profile.py --model moshi-7b --random-weights --device cuda --sessions 1` (carry .carry).

    python benchmarks/frame_profile.py [--model test-small] [--random-weights] [--device cpu]
        [--sessions 1] [--frames 50] [--compile] [--int8-weights] [--out benchmarks/results/frame_profile]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from antiphon.models.loader import LoadedModel, load_model
from antiphon.server.bench import device_kernels, speech_frames
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams

STAGES = {"Mimi encode": ("mimi", "encode"), "LMGen step": ("lm_gen", "step"), "Mimi decode": ("mimi", "decode")}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_stages(engine: Engine, seconds: dict[str, list[float]]) -> Callable[[], None]:
    """Wrap the engine's stages so that each is timed with the device synchronised around it; returns
    the function that takes the wrappers off."""
    originals = []
    for name, (owner_name, method) in STAGES.items():
        owner = getattr(engine, owner_name)
        original = getattr(owner, method)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            synchronize(engine.device)
            started = time.perf_counter()
            result = _original(*args, **kwargs)
            synchronize(engine.device)
            seconds.setdefault(_name, []).append(time.perf_counter() - started)
            return result

        setattr(owner, method, wrapper)
        originals.append((owner, method))
    return lambda: [vars(owner).pop(method) for owner, method in originals]


def started_engine(model: LoadedModel, sessions: int, frame_graphs: bool,
                   compile_backend: str | None = None) -> Engine:
    engine = Engine(model, slots=sessions, frame_graphs=frame_graphs, compile_backend=compile_backend)
    engine.warmup()
    greedy = SamplingParams(text_temperature=0.0, audio_temperature=0.0)
    engine.step(np.zeros((sessions, engine.frame_size), np.float32), np.ones(sessions, dtype=bool),
                {slot: greedy for slot in range(sessions)})
    return engine


def step_frames(engine: Engine, frames: np.ndarray, synchronized: bool) -> list[float]:
    """Step every frame (the same frame for every slot); each step's wall time."""
    stepping = np.ones(engine.slots, dtype=bool)
    walls = []
    for frame in frames:
        if synchronized:
            synchronize(engine.device)
        started = time.perf_counter()
        engine.step(np.repeat(frame[None], engine.slots, 0), stepping)
        if synchronized:
            synchronize(engine.device)
        walls.append(time.perf_counter() - started)
    return walls


def run(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    model = load_model(args.model, device=device, random_weights=args.random_weights)
    frames = speech_frames(args.frames * 0.08 + 0.08, int(model.mimi.frame_size))[:args.frames]

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    walls: dict[str, list[float]] = {}
    profilers: dict[str, profile] = {}
    variants: dict[str, tuple[LoadedModel, str | None]] = {"frame graphs (the default)": (model, None)}
    if args.compile:
        variants["compiled, with frame graphs (`--compile`)"] = (model, "inductor")
    if args.int8_weights:  # the same weights, quantized
        int8_model = load_model(args.model, device=device, random_weights=args.random_weights, int8_weights=True)
        variants["compiled, int8 LM weights (`--compile --int8-weights`)"] = (int8_model, "inductor")
    for label, (variant_model, backend) in variants.items():
        started = time.perf_counter()
        engine = started_engine(variant_model, args.sessions, frame_graphs=True, compile_backend=backend)
        print(f"{label}: ready in {time.perf_counter() - started:.0f} s", flush=True)
        walls[label] = step_frames(engine, frames, synchronized=True)
        with profile(activities=activities) as profilers[label]:
            step_frames(engine, frames, synchronized=False)
            synchronize(device)
        engine.close()

    # The stages can only be timed apart with the glue between them run eagerly (moshi's own graphs).
    engine = started_engine(model, args.sessions, frame_graphs=False)
    eager_label = "moshi's own graphs, the glue between them eager (`--no-frame-graphs`)"
    walls[eager_label] = step_frames(engine, frames, synchronized=True)
    stages: dict[str, list[float]] = {}
    unwrap = timed_stages(engine, stages)
    staged_walls = step_frames(engine, frames, synchronized=False)
    unwrap()
    engine.close()
    return report(args, walls, stages, staged_walls, profilers)


def report(args: argparse.Namespace, walls: dict[str, list[float]], stages: dict[str, list[float]],
           staged_walls: list[float], profilers: dict[str, profile]) -> str:
    ms = lambda values: 1000 * float(np.median(values))  # noqa: E731
    lines = [f"# One frame of {args.model} for {args.sessions} session(s) on {args.device}", "",
             f"Command: `python benchmarks/frame_profile.py --model {args.model}"
             f"{' --random-weights' if args.random_weights else ''} --device {args.device} --sessions "
             f"{args.sessions} --frames {args.frames}{' --compile' if args.compile else ''}"
             f"{' --int8-weights' if args.int8_weights else ''}`", "",
             "| the step, as served | median ms |", "|---|---|"]
    lines += [f"| {label} | {ms(values):.2f} |" for label, values in walls.items()]
    lines += ["", "The eager step, stage by stage:", "",
             "| stage (device synchronised around it) | median ms |", "|---|---|"]
    lines += [f"| {name} | {ms(values):.2f} |" for name, values in stages.items()]
    accounted = sum(ms(values) for values in stages.values())
    lines += [f"| the rest of the step (inputs, sampler bookkeeping, the copy to the host) | "
              f"{ms(staged_walls) - accounted:.2f} |", ""]
    sort = "self_device_time_total" if args.device != "cpu" else "self_cpu_time_total"
    for label, profiler in profilers.items():
        busy_ms, kernels = device_kernels(profiler)
        if args.device != "cpu":
            lines += [f"{label}, under the profiler: {kernels / args.frames:.0f} device kernels a step, the "
                      f"device busy {busy_ms / args.frames:.2f} ms a step.", ""]
        lines += [f"Heaviest operators, {label}:", "", "```",
                  profiler.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=50), "```", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test-small")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--compile", action="store_true", help="add the compiled step (`--compile`)")
    parser.add_argument("--int8-weights", action="store_true",
                        help="add the compiled step with int8 LM weights (`--compile --int8-weights`)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/frame_profile"))
    args = parser.parse_args()
    text = run(args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
