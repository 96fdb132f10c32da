"""`antiphon data`: generate the synthetic conversation dataset."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm import tqdm

from .dataset import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset folder")
    parser.add_argument("--train", type=int, default=20000, help="training conversations")
    parser.add_argument("--heldout", type=int, default=1000, help="held-out conversations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    for what in ("voices", "prompts"):
        parser.add_argument(f"--heldout-{what}", choices=("heldout", "train"), default="heldout",
                            help=f"the pool the held-out split's {what} come from (train: a diagnosis of "
                                 "whether a model fails on unseen voices or on unseen prompts)")


def run(args: argparse.Namespace) -> None:
    counts = {"train": args.train, "heldout": args.heldout}
    with tqdm(total=sum(counts.values()), unit="conv", desc="conversations") as bar:
        generate(args.out, counts, seed=args.seed, shard_size=args.shard_size, workers=args.workers,
                 progress=lambda result: bar.update(result["count"]), heldout_voices=args.heldout_voices,
                 heldout_prompts=args.heldout_prompts)
    print((args.out / "card.md").read_text())
