"""Where one frame's operations come from: the device operations of one engine step, counted by module.

Each operation the step dispatches (views aside) is a kernel on a GPU, and at one session most of them
take about a microsecond, so their number sets much of the frame's time (`frame_profile_gpu.md`). This
counts them on the CPU for a configuration's structure (its layer counts and streams) at a small width,
so that Moshi 7B's structure fits here: the count does not depend on the width. On the CPU moshi runs
its RMSNorm, rotary embedding and gating eagerly, while on a GPU it compiles each of them into fewer
kernels; the attention and cache bookkeeping, the codec, the sampler and the glue run the same way.

    python benchmarks/op_census.py [--model moshi-7b] [--out benchmarks/results/op_census_moshi7b]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from antiphon.models.configs import builtin_config
from antiphon.models.loader import LoadedModel, build_random
from antiphon.server.engine import Engine

# Operations that only describe memory (no kernel runs for them).
VIEWS = {"view", "_unsafe_view", "as_strided", "unsqueeze", "squeeze", "expand", "slice", "select", "t",
         "transpose", "permute", "alias", "detach", "_reshape_alias", "split", "split_with_sizes", "unbind",
         "narrow", "empty", "empty_strided", "empty_like", "lift_fresh", "_local_scalar_dense", "is_nonzero",
         "unflatten", "result_type", "item"}
NARROW = {"dim": 256, "num_heads": 4, "depformer_dim": 128, "depformer_num_heads": 2,
          "depformer_dim_feedforward": 512, "text_card": 1000}


class Census(TorchDispatchMode):
    """Counts dispatched operations under the innermost module group being run."""

    def __init__(self) -> None:
        super().__init__()
        self.where = ["LMGen and engine glue"]
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name not in VIEWS:
            self.counts[self.where[-1]][name] += 1
        return func(*args, **(kwargs or {}))

    def group(self, module: torch.nn.Module, label: str) -> None:
        def enter(*_: Any) -> None:
            self.where.append(label)

        def leave(*_: Any) -> None:  # a forward hook that returned a value would replace the output
            self.where.pop()

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)

    def around(self, owner: Any, method: str, label: str) -> None:
        original = getattr(owner, method)

        def counted(*args, **kwargs):
            self.where.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                self.where.pop()

        setattr(owner, method, counted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moshi-7b")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/op_census_moshi7b"))
    args = parser.parse_args()
    lm_config, mimi_config = builtin_config(args.model)
    mimi, lm = build_random({**lm_config, **NARROW}, mimi_config)
    engine = Engine(LoadedModel(args.model, mimi, lm, text=None, untrained=True), slots=1)  # type: ignore[arg-type]
    engine.warmup()
    census = Census()
    for name in ("encoder", "encoder_transformer", "decoder_transformer", "decoder"):
        census.group(getattr(mimi, name), f"Mimi {name.replace('_', ' ')}")
    census.around(mimi.quantizer, "encode", "Mimi quantizer")
    census.around(mimi.quantizer, "decode", "Mimi quantizer")
    for stack, label in ((lm.transformer, "temporal transformer"), (lm.depformer, "depth transformer")):
        census.group(stack, f"{label}: other")
        for layer in stack.layers:
            census.group(layer.self_attn, f"{label}: attention (projections, rotary, KV cache, masks)")
            census.group(layer.norm1, f"{label}: norms")
            census.group(layer.norm2, f"{label}: norms")
            census.group(layer.gating, f"{label}: feed-forward")
    for method in ("force_text", "force_audio", "advance"):
        census.around(engine.sampler, method, "per-slot sampler")
    frame = (0.1 * np.random.default_rng(0).standard_normal((1, engine.frame_size))).astype(np.float32)
    with census:
        engine.step(frame, np.ones(1, dtype=bool))
    engine.close()

    total = sum(sum(counter.values()) for counter in census.counts.values())
    rows = sorted(census.counts.items(), key=lambda item: -sum(item[1].values()))
    lines = [f"# Operations in one engine step: {args.model}'s structure, one session", "",
             f"Command: `python benchmarks/op_census.py --model {args.model}`", "",
             f"{total} operations that run a kernel on a GPU (views aside), at the structure's layer counts "
             f"and a small width ({', '.join(f'{k} {v}' for k, v in NARROW.items())}), on the CPU, where "
             "moshi's RMSNorm, rotary embedding and gating run uncompiled.", "",
             "| where | operations | share | most frequent |", "|---|---|---|---|"]
    for label, counter in rows:
        count = sum(counter.values())
        common = ", ".join(f"{op} {n}" for op, n in counter.most_common(5))
        lines.append(f"| {label} | {count} | {100 * count / total:.0f} % | {common} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
