"""`antiphon train lm-data`: keep a training run supplied with conversations it has not seen.

Beside a running `antiphon train lm`, generates `--chunk` conversations at a time from seeds 1, 2, ...
(the run's first dataset is seed 0, so none repeats), tokenizes them with the run's tokenizer and the
codec into `TOKENS/tokens-train-K.npz` (the trainer picks new files up as they appear), deletes their
audio, and goes on until `--minutes` pass. A later call continues after the last chunk written.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import sentencepiece
import torch

from ..data.dataset import generate
from ..loader import load_codec
from .lm_data import tokenize_split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=Path, required=True,
                        help="the LM run's token folder (holds tokenizer.model and tokens-*.npz)")
    parser.add_argument("--codec", type=Path, required=True, help="folder with mimi.safetensors, mimi_config.json")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for each chunk's audio")
    parser.add_argument("--chunk", type=int, default=4000, help="conversations per chunk")
    parser.add_argument("--minutes", type=float, default=8.0, help="start no chunk after this")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def next_chunk(tokens: Path) -> int:
    written = [int(path.stem.rsplit("-", 1)[1]) for path in tokens.glob("tokens-train-*.npz")
               if not path.name.endswith(".partial.npz")]
    return max(written, default=0) + 1


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(args.tokens / "tokenizer.model"))
    mimi = load_codec(args.codec, device).eval()
    deadline = time.monotonic() + args.minutes * 60
    chunk = next_chunk(args.tokens)
    while time.monotonic() < deadline:
        audio = args.work / f"chunk-{chunk}"
        shutil.rmtree(audio, ignore_errors=True)
        generate(audio, {"train": args.chunk}, seed=chunk, shard_size=100, workers=args.workers)
        tokenize_split(mimi, tokenizer, audio, "train", args.tokens / f"tokens-train-{chunk}.npz", device)
        shutil.rmtree(audio)
        print(f"chunk {chunk}: {args.chunk} conversations", flush=True)
        chunk += 1
