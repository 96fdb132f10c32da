"""The server's event loop per message: its CPU time for each session's frame, model aside.

At 128 sessions the server handles 3,200 WebSocket messages a second, each through one Python thread (the
event loop): receiving and decoding a client's Ogg Opus, encoding and sending the replies. Here a
stand-in engine (no model: each step sleeps as a GPU step keeps the host waiting, and returns speech) serves
N slots behind the real app under uvicorn on 127.0.0.1, and N real WebSocket clients in client processes
stream speech as Ogg Opus at the audio clock. Reported per row: the main thread's CPU time per session
frame (what bounds the sessions one loop can serve: 80 ms / that figure at best), the whole server
process's cores, mouth-to-ear latency, and the late frames the scheduler counted, each the median of
--repeats runs, for each event loop uvicorn can run (asyncio's own, and uvloop's, which `antiphon serve`
runs where it is installed), the loops' runs taking turns. Prints a table and writes OUT.json and OUT.md.

    python benchmarks/loop_overhead.py [--sessions 8,32] [--loops asyncio,uvloop] [--repeats 3]
                                       [--seconds 10] [--step-ms 40] [--out OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from antiphon.client.chat import FRAME_SIZE, SAMPLE_RATE, chat_url
from antiphon.client.local_server import LocalServer
from antiphon.server.bench import (client_sessions, engine_figures, percentiles, process_cpu_seconds,
                                   speech_frames)
from antiphon.server.engine import StepResult
from report import command_line


class StandInEngine:
    """What the scheduler and sessions see of an engine: each step waits `step_seconds` and returns
    speech (so that encoding the replies costs what it does for a real model) and a word every third
    frame (so that text messages are sent too). Like a model's, its replies lag the input by a frame:
    a session's first step produces nothing."""

    device = "stand-in"

    def __init__(self, slots: int, step_seconds: float) -> None:
        self.slots, self.frame_size, self.sample_rate = slots, FRAME_SIZE, SAMPLE_RATE
        self.step_seconds = step_seconds
        self.speech = speech_frames(4.0, FRAME_SIZE)
        self.steps = 0

    def step(self, pcm: np.ndarray, stepping: np.ndarray, joining=None) -> StepResult:
        time.sleep(self.step_seconds)
        frame = self.speech[self.steps % len(self.speech)]
        self.steps += 1
        text = np.full(self.slots, self.steps % 3 == 0, dtype=np.int64)
        produced = stepping.copy()
        produced[list(joining or ())] = False
        return StepResult(pcm=np.broadcast_to(frame, (self.slots, FRAME_SIZE)), text=text,
                          audio=np.zeros((self.slots, 8), np.int64), produced=produced)

    def text_piece(self, token: int) -> str | None:
        return " word" if token else None


def serve(port: int, slots: int, step_seconds: float, loop: str) -> None:
    """The server side, in its own process: the real app and scheduler around the stand-in engine."""
    import uvicorn

    from antiphon.server.app import create_app
    from antiphon.server.metrics import Metrics
    from antiphon.server.scheduler import Scheduler
    from antiphon.server.session import ServerContext, SessionLimits

    metrics = Metrics(slots)
    context = ServerContext(Scheduler(StandInEngine(slots, step_seconds), metrics), metrics,  # type: ignore[arg-type]
                            "stand-in", untrained=True, limits=SessionLimits(idle_seconds=30))
    uvicorn.run(create_app(context), host="127.0.0.1", port=port, log_level="warning", loop=loop)


def measure(sessions: int, loop: str, seconds: float, step_seconds: float, client_processes: int) -> dict:
    server = LocalServer(["--slots", str(sessions), "--step-ms", str(step_seconds * 1000), "--loops", loop],
                         ready_seconds=60, program=(__file__, "--serve"))
    try:
        pcm = speech_frames(seconds, FRAME_SIZE).reshape(-1)
        processes = max(1, min(client_processes, sessions))
        shares = [sessions // processes + (i < sessions % processes) for i in range(processes)]
        pid = server.process.pid
        main_before = process_cpu_seconds(pid, thread=pid)
        cpu_before, clock_before = process_cpu_seconds(pid), time.monotonic()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.starmap(client_sessions, [(chat_url(server.base), pcm, share) for share in shares])
        wall = time.monotonic() - clock_before
        main_cpu = process_cpu_seconds(pid, thread=pid) - main_before
        cores = (process_cpu_seconds(pid) - cpu_before) / wall
        engine = engine_figures(server.get("/metrics").decode())
    finally:
        server.stop()
    latencies = [value for values, _ in results for value in values]
    errors = [error for _, session_errors in results for error in session_errors]
    session_frames = sessions * (len(pcm) // FRAME_SIZE)
    return {"sessions": sessions, "loop": loop, "session_frames": session_frames, "errors": errors,
            "loop_cpu_ms_per_session_frame": round(1000 * main_cpu / session_frames, 3),
            "server_cpu_cores": round(cores, 2), "mouth_to_ear_ms": percentiles(latencies),
            "late_frames": engine["late_frames"], "ticks": engine["ticks"]}


def median_row(runs: list[dict]) -> dict:
    """One row from repeated runs: the median of each figure, and every run's loop CPU."""
    def median(values: list[float]) -> float:
        return float(np.median(values))
    return {"sessions": runs[0]["sessions"], "loop": runs[0]["loop"], "runs": len(runs),
            "loop_cpu_ms_per_session_frame": median([r["loop_cpu_ms_per_session_frame"] for r in runs]),
            "loop_cpu_ms_each_run": [r["loop_cpu_ms_per_session_frame"] for r in runs],
            "server_cpu_cores": median([r["server_cpu_cores"] for r in runs]),
            "mouth_to_ear_ms": {q: median([r["mouth_to_ear_ms"][q] for r in runs]) for q in ("p50", "p99")},
            "late_frames": median([r["late_frames"] for r in runs]),
            "errors": [error for r in runs for error in r["errors"]]}


def report(rows: list[dict], command: str) -> str:
    lines = ["# The server's event loop per message", "", f"Command: `{command}`", "",
             "Medians of the runs; the loop CPU of each run in brackets.", "",
             "| sessions | event loop | loop CPU per session frame, ms | server process cores "
             "| mouth-to-ear p50 / p99 ms | late frames | errors |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["mouth_to_ear_ms"]
        each = ", ".join(f"{value:.3f}" for value in row["loop_cpu_ms_each_run"])
        lines.append(f"| {row['sessions']} | {row['loop']} | {row['loop_cpu_ms_per_session_frame']:.3f} ({each}) | "
                     f"{row['server_cpu_cores']:.2f} | {latency['p50']:.1f} / {latency['p99']:.1f} | "
                     f"{row['late_frames']:g} | {len(row['errors'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="8,32")
    parser.add_argument("--loops", default="asyncio,uvloop", help="uvicorn's event loops to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="speech each client streams")
    parser.add_argument("--step-ms", type=float, default=40.0, help="how long each stand-in step waits")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loop_overhead"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    loops = args.loops.split(",")
    if args.serve:
        serve(args.port, args.slots, args.step_ms / 1000, loops[0])
        return
    command = command_line()
    rows = []
    for sessions in [int(n) for n in args.sessions.split(",")]:
        runs: dict[str, list[dict]] = {loop: [] for loop in loops}
        for _ in range(args.repeats):
            for loop in loops:
                runs[loop].append(measure(sessions, loop, args.seconds, args.step_ms / 1000,
                                          args.client_processes))
        rows += [median_row(runs[loop]) for loop in loops]
    table = report(rows, command)
    print(table)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
