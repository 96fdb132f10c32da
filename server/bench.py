"""`antiphon bench`: how many real-time sessions one device serves, beside moshi's own modules.

For each session count N: an engine of N slots runs under the real scheduler (its thread, its ticks),
fed by N sessions that each put one 80 ms frame of real speech into their inbox on the audio clock.
Reported: tick time (the batched step) p50/p99, frame latency (a frame entering its session's inbox to
its reply frame leaving the engine) p50/p99, late frames (ticks in which a session had no frame ready, a
symptom of ticks that overran), and peak device memory. Then moshi's LMGen + MimiModel step the same
frames at batch N, back to back, in the same process: each row carries the ratio.
Frame latency includes the wait for a tick: the sessions' frames arrive at phases spread over the
frame, and a tick waits for the last of them (at most one frame).

With `--server`, each row instead starts `antiphon serve` with N slots and drives it over loopback
with N real WebSocket clients (Opus at the audio clock, spread over client processes), and reports the
mouth-to-ear latency of every frame: from sending input frame j + 1 to receiving the reply frame j it
produced (network, queues, Opus both ways and one step).

Results go to OUT.md and OUT.json with the command that made them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from moshi.models.lm import LMGen

from ..models.codec_precision import DECODER_DTYPES
from ..models.loader import LoadedModel, load_model
from .engine import Engine
from .metrics import Metrics
from .params import SamplingParams
from .scheduler import FRAME_SECONDS, Scheduler, SlotLink, SlotOutput

FRAME_MS = FRAME_SECONDS * 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="test-small", help="a model folder or a built-in configuration")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--context-frames", type=int, help="the LM's attention context (default: the model's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sessions", default="1,2,4", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=12.0, help="audio each session streams per row")
    parser.add_argument("--warmup-frames", type=int, default=12, help="first frames of a row not counted")
    parser.add_argument("--frame-graphs", action=argparse.BooleanOptionalAction, default=True,
                        help="CUDA: the engine's step as two CUDA graphs (--no-frame-graphs: moshi's graphed "
                             "pieces with Python between them)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's step pieces")
    parser.add_argument("--decoder-dtype", choices=DECODER_DTYPES, default="float32",
                        help="the codec decoder's dtype (moshi's modules in the same process share it)")
    parser.add_argument("--int8-weights", action="store_true",
                        help="Antiphon's LM with int8 linear weights (moshi's modules keep the model's own, "
                             "loaded beside it)")
    parser.add_argument("--server", action="store_true",
                        help="drive a real server over loopback with WebSocket clients instead")
    parser.add_argument("--client-processes", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="--server: processes the clients are spread over")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench"))


class TimedEngine:
    """The engine as the scheduler sees it, with each step's wall time recorded."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.slots, self.frame_size = engine.slots, engine.frame_size
        self.step_seconds: list[float] = []

    def step(self, *args, **kwargs):
        started = time.perf_counter()
        result = self.engine.step(*args, **kwargs)
        self.step_seconds.append(time.perf_counter() - started)
        return result

    def text_piece(self, token: int) -> str | None:
        return self.engine.text_piece(token)


def speech_frames(seconds: float, frame_size: int) -> np.ndarray:
    """Real speech (espeak-ng, as the tests use), cut into frames; a voice-like signal without espeak-ng."""
    frames = int(seconds / FRAME_SECONDS)
    try:
        from ..models.data.conversations import Generator
        text = "Hello there. What is three plus four? Please spell the word cat for me. Is the sky blue?"
        pcm = Generator().utterance(text, voice="en", rate=170, pitch=50, pitch_range=50).pcm
    except RuntimeError:  # no espeak-ng on this machine
        rng = np.random.default_rng(0)
        t = np.arange(frames * frame_size) / 24000
        pcm = (0.1 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
               + 0.01 * rng.standard_normal(len(t)))
    return np.resize(np.asarray(pcm, dtype=np.float32), frames * frame_size).reshape(frames, frame_size)


def run_engine(model: LoadedModel, sessions: int, frames: np.ndarray, warmup: int,
               frame_graphs: bool = True, compile_backend: str | None = None) -> dict:
    engine = Engine(model, slots=sessions, frame_graphs=frame_graphs, compile_backend=compile_backend)
    engine.warmup()
    timed = TimedEngine(engine)
    scheduler = Scheduler(timed, Metrics(sessions))  # type: ignore[arg-type]
    sent: list[dict[int, float]] = [{} for _ in range(sessions)]
    latencies: list[tuple[int, float]] = []  # (the session's step, seconds from inbox to reply)
    lock = threading.Lock()

    def deliver_for(session: int):
        def deliver(output: SlotOutput) -> None:
            with lock:
                latencies.append((output.step, time.perf_counter() - sent[session][output.step]))
        return deliver

    links = [SlotLink(SamplingParams(), deliver_for(i), fail=lambda message: None) for i in range(sessions)]
    for link in links:
        scheduler.acquire(link)
    scheduler.start()
    # The audio clock: each session sends a frame every 80 ms, the sessions' phases spread evenly over
    # the frame as independent clients' would be, so that the wait for the next tick averages out.
    schedule = sorted((index + session / sessions, session, index)
                      for index in range(len(frames)) for session in range(sessions))
    began = time.perf_counter()
    for at, session, index in schedule:
        time.sleep(max(0.0, began + at * FRAME_SECONDS - time.perf_counter()))
        sent[session][index] = time.perf_counter()
        scheduler.put(links[session], frames[index])
    deadline = time.perf_counter() + 30
    while any(link.inbox for link in links) and time.perf_counter() < deadline:
        time.sleep(0.01)
    time.sleep(2 * FRAME_SECONDS)
    scheduler.stop()
    late = scheduler.metrics.registry.get_sample_value("antiphon_late_frames_total") or 0
    engine.close()
    ticks = timed.step_seconds[1:][warmup:]  # the first tick joins every session
    counted = [seconds for step, seconds in latencies if step >= warmup]
    return {"tick_ms": percentiles(ticks), "latency_ms": percentiles(counted), "late_frames": int(late),
            "frames": len(frames) * sessions, "delivered": len(latencies)}


@torch.no_grad()
def run_reference(model: LoadedModel, sessions: int, frames: np.ndarray, warmup: int) -> dict:
    """moshi's own modules at batch N, stepped back to back (no scheduler, one sampling setting)."""
    lm_gen = LMGen(model.lm, temp=0.8, temp_text=0.7)
    device = next(model.lm.parameters()).device
    times = []
    with model.mimi.streaming(sessions), lm_gen.streaming(sessions):
        for index, frame in enumerate(frames):
            batch = torch.from_numpy(np.repeat(frame[None, None], sessions, axis=0)).to(device)
            started = time.perf_counter()
            tokens = lm_gen.step(model.mimi.encode(batch))
            if tokens is not None:
                model.mimi.decode(tokens[:, 1:]).cpu()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= warmup:
                times.append(time.perf_counter() - started)
    return {"frame_ms": percentiles(times)}


def percentiles(seconds: list) -> dict[str, float]:
    values = np.asarray(seconds, dtype=float) * 1000
    if not len(values):
        return {"p50": float("nan"), "p99": float("nan")}
    return {"p50": float(np.median(values)), "p99": float(np.percentile(values, 99))}


def device_kernels(profiler: torch.profiler.profile) -> tuple[float, int]:
    """(ms the device was busy, kernels it ran) over what `profiler` recorded."""
    events = profiler.key_averages()
    busy_ms = sum(event.self_device_time_total for event in events) / 1000
    return busy_ms, sum(event.count for event in events if event.device_type == torch.autograd.DeviceType.CUDA)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _measured(measure, model: LoadedModel, sessions: int, frames: np.ndarray, warmup: int) -> dict:
    """One side of a row, with its peak device memory; a batch that does not fit says so."""
    device = next(model.lm.parameters()).device
    _reset_peak(device)
    try:
        figures = measure(model, sessions, frames, warmup)
    except torch.OutOfMemoryError:
        return {"out_of_memory": True}
    return {**figures, "peak_gib": _peak_gib(device)}


def sweep(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)

    def load(int8_weights: bool) -> LoadedModel:
        loaded = load_model(args.model, device=device, random_weights=args.random_weights,
                            context=args.context_frames, decoder_dtype=getattr(torch, args.decoder_dtype),
                            int8_weights=int8_weights)
        loaded.mimi.eval()
        return loaded

    model = load(args.int8_weights)
    reference = load(False) if args.int8_weights else model  # moshi's rows: the model as trained
    weights_gib = _peak_gib(device)
    frames = speech_frames(args.seconds, int(model.mimi.frame_size))
    rows = []
    for sessions in [int(n) for n in args.sessions.split(",")]:
        row = {"sessions": sessions,
               "antiphon": _measured(partial(run_engine, frame_graphs=args.frame_graphs,
                                             compile_backend="inductor" if args.compile else None),
                                     model, sessions, frames, args.warmup_frames),
               "moshi": _measured(run_reference, reference, sessions, frames, args.warmup_frames)}
        rows.append(row)
        print(_row_line(row, weights_gib), flush=True)
    return {"model": model.name, "device": _device_name(device), "torch": torch.__version__,
            "context_frames": model.lm.transformer.layers[0].self_attn.context,
            "dtype": str(next(model.lm.parameters()).dtype).removeprefix("torch."),
            "frame_graphs": (args.frame_graphs or args.compile) and device.type == "cuda",
            "compiled": args.compile, "decoder_dtype": args.decoder_dtype, "int8_weights": args.int8_weights,
            "weights_gib": weights_gib, "seconds": args.seconds, "warmup_frames": args.warmup_frames,
            "rows": rows}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


HEADER = ("| sessions | Antiphon tick p50 / p99 ms | frame latency p50 / p99 ms | late frames | Antiphon peak GiB "
          "| GiB per session beyond the weights | moshi frame p50 / p99 ms | moshi peak GiB | tick p50 ratio "
          "| real time (tick p99 < 80 ms) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row_line(row: dict, weights_gib: float | None) -> str:
    ours, theirs = row["antiphon"], row["moshi"]
    if ours.get("out_of_memory"):
        left = "out of memory | - | - | - | -"
    else:
        per_session = (None if ours["peak_gib"] is None or weights_gib is None
                       else (ours["peak_gib"] - weights_gib) / row["sessions"])
        left = (f"{ours['tick_ms']['p50']:.1f} / {ours['tick_ms']['p99']:.1f} | "
                f"{ours['latency_ms']['p50']:.1f} / {ours['latency_ms']['p99']:.1f} | "
                f"{ours['late_frames']} of {ours['frames']} | {_gib(ours['peak_gib'])} | "
                f"{'-' if per_session is None else f'{per_session:.2f}'}")
    right = ("out of memory | -" if theirs.get("out_of_memory") else
             f"{theirs['frame_ms']['p50']:.1f} / {theirs['frame_ms']['p99']:.1f} | {_gib(theirs['peak_gib'])}")
    both = not ours.get("out_of_memory") and not theirs.get("out_of_memory")
    ratio = f"{ours['tick_ms']['p50'] / theirs['frame_ms']['p50']:.2f}" if both else "-"
    real_time = "-" if ours.get("out_of_memory") else ("yes" if ours["tick_ms"]["p99"] < FRAME_MS else "no")
    return f"| {row['sessions']} | {left} | {right} | {ratio} | {real_time} |"


_INT8_NOTE = (" with int8 LM weights (the weights figure also counts the copy with the model's own weights "
              "that moshi's modules run)")


def report(result: dict, command: str) -> str:
    decoder = result.get("decoder_dtype", "float32")
    lines = [f"# Sessions per device: {result['model']} on {result['device']}", "",
             f"Command: `{command}`", "",
             f"torch {result['torch']}, LM dtype {result['dtype']}, weights {_gib(result['weights_gib'])} GiB, "
             f"attention context {result['context_frames']} frames; "
             f"{result['seconds']:.0f} s of speech per session and row, the first {result['warmup_frames']} "
             f"frames not counted. Antiphon: the engine under the real scheduler, fed on the audio clock"
             f"{' (frame graphs)' if result.get('frame_graphs') else ''}"
             f"{' (compiled)' if result.get('compiled') else ''}"
             f"{_INT8_NOTE if result.get('int8_weights') else ''}; "
             f"moshi: its LMGen + MimiModel stepped back to back at the same batch size"
             f"{'' if decoder == 'float32' else ', both with the codec decoder in ' + decoder}"
             ".", "", HEADER]
    lines += [_row_line(row, result["weights_gib"]) for row in result["rows"]]
    return "\n".join(lines) + "\n"


def client_sessions(url: str, pcm: np.ndarray, count: int) -> tuple[list[float], list[str]]:
    """In a client process: `count` sessions streaming `pcm` at once; their frame latencies and errors."""
    from ..client.chat import talk

    async def everyone():
        return await asyncio.gather(*(talk(url, pcm) for _ in range(count)))

    latencies, errors = [], []
    for reply in asyncio.run(everyone()):
        latencies += reply.latencies()
        errors += reply.errors
    return latencies, errors


def run_server(args: argparse.Namespace, sessions: int, pcm: np.ndarray) -> dict:
    from ..client.chat import chat_url
    from ..client.local_server import LocalServer

    serve_args = ["--model", args.model, "--device", args.device, "--slots", str(sessions),
                  "--idle-seconds", "30", "--log-level", "warning"]
    if args.context_frames:
        serve_args += ["--context-frames", str(args.context_frames)]
    if not args.frame_graphs:
        serve_args.append("--no-frame-graphs")
    if args.compile:
        serve_args.append("--compile")
    serve_args += ["--decoder-dtype", args.decoder_dtype] + (["--int8-weights"] if args.int8_weights else [])
    server = LocalServer(serve_args + (["--random-weights"] if args.random_weights else []),
                         log=args.out.with_name(f"{args.out.name}-server-{sessions}.log"))
    try:
        processes = max(1, min(args.client_processes, sessions))
        shares = [sessions // processes + (i < sessions % processes) for i in range(processes)]
        cpu_before, clock_before = process_cpu_seconds(server.process.pid), time.monotonic()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.starmap(client_sessions, [(chat_url(server.base), pcm, share) for share in shares])
        server_cores = (process_cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - clock_before)
        engine = engine_figures(server.get("/metrics").decode())
    finally:
        server.stop()
    per_session = len(pcm) // 1920
    latencies = [value for values, _ in results for value in values]
    errors = [error for _, session_errors in results for error in session_errors]
    return {"sessions": sessions, "frames": len(latencies), "expected_frames": sessions * (per_session - 1),
            "mouth_to_ear_ms": percentiles(latencies), "errors": errors,
            "server_cpu_cores": round(server_cores, 2), **engine}


def process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process, all its threads, or of one of them (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_figures(exposition: str) -> dict:
    """What the server's own metrics say about its engine over the row: whether the ticks kept time."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(sample.name, sample.labels.get("le")): sample.value
               for family in text_string_to_metric_families(exposition) for sample in family.samples}
    ticks = samples[("antiphon_tick_seconds_count", None)]
    return {"ticks": int(ticks),
            "tick_ms_mean": round(1000 * samples[("antiphon_tick_seconds_sum", None)] / max(ticks, 1), 1),
            "ticks_within_frame": round(samples[("antiphon_tick_seconds_bucket", "0.08")] / max(ticks, 1), 3),
            "overrun_ticks": int(samples[("antiphon_overrun_ticks_total", None)]),
            "late_frames": int(samples[("antiphon_late_frames_total", None)])}


def server_report(rows: list[dict], command: str, model: str) -> str:
    lines = [f"# Mouth-to-ear latency through the full server: {model}", "", f"Command: `{command}`", "",
             "Each row: `antiphon serve` with N slots, N WebSocket clients on loopback streaming speech as Ogg "
             "Opus at the audio clock. Latency of a frame: sending input frame j + 1 to receiving reply frame j.",
             "The engine columns come from the server's own /metrics over the row (ticks from its start); "
             "server CPU: cores' worth of CPU time the server process used while the clients ran.", "",
             "| sessions | mouth-to-ear p50 / p99 ms | frames measured | errors | engine tick mean ms "
             "| ticks within 80 ms | overrun ticks | late frames | server CPU (cores) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["mouth_to_ear_ms"]
        lines.append(f"| {row['sessions']} | {latency['p50']:.1f} / {latency['p99']:.1f} | "
                     f"{row['frames']} of {row['expected_frames']} | {len(row['errors'])} | "
                     f"{row['tick_ms_mean']:.1f} | {100 * row['ticks_within_frame']:.1f} % | "
                     f"{row['overrun_ticks']} of {row['ticks']} | {row['late_frames']} | "
                     f"{row['server_cpu_cores']:.2f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> None:
    command = "antiphon bench " + " ".join(sys.argv[2:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.server:
        pcm = speech_frames(args.seconds, 1920).reshape(-1)
        rows = []
        for sessions in [int(n) for n in args.sessions.split(",")]:
            rows.append(run_server(args, sessions, pcm))
            print(rows[-1]["sessions"], rows[-1]["mouth_to_ear_ms"], len(rows[-1]["errors"]), flush=True)
        _save(args.out, {"command": command, "rows": rows}, server_report(rows, command, args.model))
        return
    result = sweep(args)
    _save(args.out, {**result, "command": command}, report(result, command))


def _save(out: Path, figures: dict, table: str) -> None:
    """OUT.json with the figures, OUT.md with the table, which is also printed."""
    out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
