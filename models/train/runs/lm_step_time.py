"""Where an LM training step's time goes, per batch size, on the device it runs on.

    python3 models/train/runs/lm_step_time.py --batches 32,64 [--modes eager,captured,compiled,graphed]
        [--graph-check] -- TRAIN-LM-OPTIONS...

TRAIN-LM-OPTIONS are `antiphon train lm`'s (--data, --codec, --out of a run whose tokens exist; nothing is
written there). For each batch size it takes --warmup untimed steps, then reports the wall time of a step
with the host queueing ahead, the host's time a step (building the batch and queueing the step's
kernels; building measured apart too), and, from the profiler, the device's busy time and kernel count
a step. A step whose wall time is near the device's is bound by the GPU's work; where the host's time
equals the wall time, the host either queues slower than the device runs or waits for it inside the step
(--sync-debug lists where). --graph-check first trains a few steps eagerly and from the captured graph
(`--cuda-graph`) from the same weights on the same batches, without the random perturbations of what
the model reads, and reports how far the two runs' figures and weights are apart.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from collections import Counter

import torch
from moshi.utils.compile import no_compile
from torch.profiler import ProfilerActivity, profile

from antiphon.models.train.lm import LMTrainer, add_arguments
from antiphon.server.bench import device_kernels

# --modes: train lm's --compile and --cuda-graph
MODES = {"eager": (None, False), "captured": (None, True), "compiled": ("default", False),
         "graphed": ("reduce-overhead", False)}
TIMED_STEPS = 30
PROFILED_STEPS = 5
CHECKED_STEPS = 8  # the captured step's first 3 run eagerly (its warm-up), the rest from the graph


def synchronize(trainer: LMTrainer) -> None:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(trainer: LMTrainer, steps: int) -> tuple[float, float]:
    """(wall, host) ms a step: the host queues the steps' kernels ahead of the device, which is waited for
    only at the end."""
    synchronize(trainer)
    host = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        begun = time.perf_counter()
        trainer.train_step(1.0)
        host += time.perf_counter() - begun
    synchronize(trainer)
    return 1000 * (time.perf_counter() - started) / steps, 1000 * host / steps


def time_batch_building(trainer: LMTrainer, batches: int) -> float:
    """ms to draw, pad and copy one batch to the device."""
    synchronize(trainer)
    started = time.perf_counter()
    for _ in range(batches):
        trainer.codes(trainer.train_set, trainer.draw_batch())
    synchronize(trainer)
    return 1000 * (time.perf_counter() - started) / batches


def device_busy(trainer: LMTrainer, steps: int) -> tuple[float, float]:
    """(kernel time in ms, kernels) a step, from the profiler."""
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        for _ in range(steps):
            trainer.train_step(1.0)
        synchronize(trainer)
    busy_ms, kernels = device_kernels(profiler)
    return busy_ms / steps, kernels / steps


def synchronizing_calls(trainer: LMTrainer) -> list[str]:
    """Where one step makes the host wait for the device: each call that synchronizes, by source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.train_step(1.0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    lines = Counter(f"{warning.filename}:{warning.lineno}: {str(warning.message).splitlines()[0]}"
                    for warning in caught if "synchroniz" in str(warning.message)
                    and "prototype" not in str(warning.message))  # the debug mode's own notice
    return [f"{count} x {line}" for line, count in lines.items()]


def graph_check(train_args: argparse.Namespace, batch: int) -> str:
    """The largest differences between eager and captured training from the same weights on the same
    batches: in the steps' figures, and in the weights after them (relative to the largest weight)."""
    runs, captured = [], False
    for cuda_graph in (False, True):
        args = argparse.Namespace(**{**vars(train_args), "batch": batch, "compile": None, "cuda_graph": cuda_graph,
                                     "agent_noise": 0.0, "user_mask": 0.0, "dropout": 0.0})
        trainer = LMTrainer(args)
        trainer.fixed_length = True  # the eager run on the captured step's padded batches too
        figures = [{name: value.item() for name, value in trainer.train_step(1.0).items()}
                   for _ in range(CHECKED_STEPS)]
        weights = {name: value.detach().float().clone() for name, value in trainer.lm.state_dict().items()}
        runs.append((figures, weights))
        captured = captured or (trainer.captured_step is not None and trainer.captured_step.graph is not None)
        del trainer
    (eager_figures, eager_weights), (graphed_figures, graphed_weights) = runs
    figure_gap = max(abs(eager[name] - graphed[name])
                     for eager, graphed in zip(eager_figures, graphed_figures) for name in eager)
    scale = max(weight.abs().max().item() for weight in eager_weights.values())
    weight_gap = max((eager_weights[name] - graphed_weights[name]).abs().max().item() for name in eager_weights)
    if not captured:
        return f"Graph check at batch {batch}: the step could not be captured (it ran eagerly)."
    return (f"Graph check at batch {batch}, {CHECKED_STEPS} steps: figures (losses, accuracies) at most "
            f"{figure_gap:.2e} apart, weights at most {weight_gap / scale:.2e} of the largest weight apart.")


def main() -> None:
    ours, theirs = sys.argv[1:], []
    if "--" in ours:
        split = ours.index("--")
        ours, theirs = ours[:split], ours[split + 1:]
    probe = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    probe.add_argument("--batches", default="32,64")
    probe.add_argument("--modes", default="eager",
                       help=f"any of {', '.join(MODES)}: train lm's eager step, its --cuda-graph, its --compile "
                            "and --compile reduce-overhead (batches padded to --max-frames but eager)")
    probe.add_argument("--graph-check", action="store_true",
                       help="first compare eager and captured training steps (CUDA)")
    probe.add_argument("--sync-debug", action="store_true",
                       help="also list the calls in a step that make the host wait for the device (CUDA)")
    probe.add_argument("--warmup", type=int, default=100,
                       help="untimed steps first: the first tens of steps meet new shapes and run slower")
    train = argparse.ArgumentParser()
    add_arguments(train)
    probe_args, train_args = probe.parse_args(ours), train.parse_args(theirs)
    batches = [int(size) for size in probe_args.batches.split(",")]
    if probe_args.graph_check:
        with no_compile():
            print(graph_check(train_args, batches[-1]), "\n", flush=True)
    print("| batch | step | wall ms/step | host ms/step | of which batch building | device busy ms/step "
          "| kernels/step | conversations/s |")
    print("|---|---|---|---|---|---|---|---|")
    with no_compile():
        for batch, mode in itertools.product(batches, probe_args.modes.split(",")):
            train_args.batch, (train_args.compile, train_args.cuda_graph) = batch, MODES[mode]
            try:
                trainer = LMTrainer(train_args)
                time_steps(trainer, probe_args.warmup)
            except Exception as error:  # a mode that cannot train here is reported, and the others still run
                print(f"| {batch} | {mode} | failed: {type(error).__name__}: {str(error).splitlines()[0]} "
                      "| | | | | |", flush=True)
                trainer = None
                continue
            wall, host = time_steps(trainer, TIMED_STEPS)
            building = time_batch_building(trainer, TIMED_STEPS)
            profiled = "- | -"  # the profiler sees no device kernels on a CPU
            if trainer.device.type == "cuda":
                busy, kernels = device_busy(trainer, PROFILED_STEPS)
                profiled = f"{busy:.1f} | {kernels:.0f}"
            if trainer.captured_step is not None and trainer.captured_step.eager:
                mode += " (not captured: eager)"
            print(f"| {batch} | {mode} | {wall:.1f} | {host:.1f} | {building:.1f} | {profiled} "
                  f"| {1000 * batch / wall:.0f} |", flush=True)
            if probe_args.sync_debug and trainer.device.type == "cuda":
                print("\n".join(["", f"Synchronizing calls in one {mode} step at batch {batch}:",
                                  *synchronizing_calls(trainer), ""]), flush=True)
            del trainer
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
