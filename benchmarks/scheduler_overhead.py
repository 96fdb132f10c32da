"""The scheduler's own cost with many sessions: the engine thread's CPU time per tick, besides the step.

A stand-in engine (no model: each step sleeps as a GPU step would keep the host waiting) of N slots runs
under the real scheduler, fed by N sessions on the audio clock at phases spread over the frame. Python
threads share one interpreter lock, so the engine thread's CPU time is time the server's event loop
cannot run. Prints a table and writes benchmarks/results/scheduler_overhead.{md,json}.

    python benchmarks/scheduler_overhead.py [--sessions 1,32,128] [--seconds 8] [--step-ms 40]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from antiphon.server.engine import StepResult
from antiphon.server.metrics import Metrics
from antiphon.server.params import SamplingParams
from antiphon.server.scheduler import FRAME_SECONDS, Scheduler, SlotLink

FRAME = 1920


class SleepingEngine:
    """What the scheduler sees of an engine; its step only waits."""

    def __init__(self, slots: int, step_seconds: float) -> None:
        self.slots, self.frame_size, self.step_seconds = slots, FRAME, step_seconds
        self.engine_cpu: list[float] = []  # engine-thread CPU seconds at each step's start
        self.pcm = np.zeros((slots, FRAME), np.float32)
        self.tokens = np.zeros((slots, 9), np.int64)

    def step(self, pcm, stepping, joining=None) -> StepResult:
        self.engine_cpu.append(time.thread_time())
        time.sleep(self.step_seconds)
        return StepResult(pcm=self.pcm, text=self.tokens[:, 0], audio=self.tokens[:, 1:], produced=stepping)

    def text_piece(self, token: int) -> None:
        return None


def measure(sessions: int, seconds: float, step_seconds: float) -> dict:
    engine = SleepingEngine(sessions, step_seconds)
    scheduler = Scheduler(engine, Metrics(sessions))  # type: ignore[arg-type]
    links = [SlotLink(SamplingParams(), deliver=lambda output: None, fail=print) for _ in range(sessions)]
    for link in links:
        scheduler.acquire(link)
    scheduler.start()
    frame = np.zeros(FRAME, np.float32)
    schedule = sorted((index + session / sessions, session) for index in range(int(seconds / FRAME_SECONDS))
                      for session in range(sessions))
    began = time.perf_counter()
    for at, session in schedule:
        time.sleep(max(0.0, began + at * FRAME_SECONDS - time.perf_counter()))
        scheduler.put(links[session], frame)
    time.sleep(3 * FRAME_SECONDS)
    scheduler.stop()
    # CPU the engine thread spent between consecutive steps' starts, less the step's own (sleeping) part
    per_tick = np.diff(engine.engine_cpu)
    return {"sessions": sessions, "ticks": len(engine.engine_cpu),
            "engine_thread_cpu_ms_per_tick": round(1000 * float(np.median(per_tick)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,32,128")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--step-ms", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scheduler_overhead"))
    args = parser.parse_args()
    rows = [measure(int(n), args.seconds, args.step_ms / 1000) for n in args.sessions.split(",")]
    lines = ["| sessions | ticks | engine-thread CPU per tick, median ms |", "|---|---|---|"]
    lines += [f"| {r['sessions']} | {r['ticks']} | {r['engine_thread_cpu_ms_per_tick']:.3f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    args.out.with_suffix(".json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                         "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(
        "# The scheduler's own cost\n\nCommand: `python benchmarks/scheduler_overhead.py "
        f"--sessions {args.sessions} --seconds {args.seconds:g} --step-ms {args.step_ms:g}`\n\n{table}\n")


if __name__ == "__main__":
    main()
