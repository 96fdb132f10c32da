"""`antiphon train codec`: train the small Mimi on the synthetic conversations.

moshi's own MimiModel in training mode (k-means initialised, EMA-updated split RVQ with dead-code
replacement) with a multi-scale mel loss, a small waveform L1 and the RVQ commitment penalty. A linear
probe reads the first codebook's quantized embedding and predicts the phoneme heard in each 80 ms frame,
so that the first codebook carries phonetic (semantic) content, as distillation does in Mimi.

Runs until `--minutes` or `--steps` is reached, checkpoints to `--out/train-state.pt` (resume with
`--resume`), logs losses to `--out/log.jsonl`, and exports the codec in Kyutai's layout
(`mimi.safetensors` + `mimi_config.json`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from moshi.models import loaders
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from ..configs import ANTIPHON_SMALL_MIMI
from .audio_losses import MultiScaleMel
from .codec_data import CropSampler, build_inventory, load_tracks
from .schedule import cooldown_scale

WEIGHTS = {"mel": 1.0, "waveform": 0.1, "commitment": 1.0, "phoneme": 0.5}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder from `antiphon data`")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log, export")
    parser.add_argument("--resume", type=Path, help="a train-state.pt to continue from")
    parser.add_argument("--init", type=Path,
                        help="start from an exported mimi.safetensors (weights only, fresh optimizer)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crop-frames", type=int, default=25, help="80 ms frames per training crop")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--minutes", type=float, default=8.0, help="stop after this much training time")
    parser.add_argument("--steps", type=int, default=10**9, help="stop after this many steps in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cooldown", type=float, default=0.0,
                        help="fraction of --minutes at the end over which the learning rate falls linearly to 5%%")


class CodecTrainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        torch.manual_seed(args.seed)
        state = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
        self.inventory = state["inventory"] if state else build_inventory(args.data)
        self.mimi = loaders.get_mimi(None, ANTIPHON_SMALL_MIMI, device=self.device, num_codebooks=8)
        dimension = ANTIPHON_SMALL_MIMI["seanet"]["dimension"]
        self.probe = nn.Conv1d(dimension, len(self.inventory), 1).to(self.device)
        parameters = list(self.mimi.parameters()) + list(self.probe.parameters())
        self.optimizer = torch.optim.AdamW(parameters, lr=args.lr, betas=(0.8, 0.99))
        self.step = 0
        if state:
            self.mimi.load_state_dict(state["mimi"])
            self.probe.load_state_dict(state["probe"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = state["step"]
        elif args.init:
            self.mimi.load_state_dict(load_file(str(args.init)))
        self.mel = MultiScaleMel().to(self.device)
        self._semantic: list[torch.Tensor] = []
        self.mimi.quantizer.rvq_first.register_forward_hook(lambda _m, _i, out: self._semantic.append(out.x))
        tracks = load_tracks(args.data, "train", self.inventory)
        self.sampler = CropSampler(tracks, args.crop_frames, seed=args.seed + self.step)
        self.sampler.silence = self.inventory["_"]

    def set_learning_rate(self, scale: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.args.lr * scale

    def train_step(self) -> dict[str, float]:
        self.mimi.train()
        audio, labels = self.sampler.batch(self.args.batch)
        x = torch.from_numpy(audio)[:, None].to(self.device)
        target = torch.from_numpy(labels).to(self.device)
        self._semantic.clear()
        result = self.mimi(x)
        logits = self.probe(self._semantic[-1])[..., :target.shape[1]]
        losses = {
            "mel": self.mel(result.x, x),
            "waveform": (result.x - x).abs().mean(),
            "commitment": result.penalty,
            "phoneme": nn.functional.cross_entropy(logits, target),
        }
        total = sum(WEIGHTS[name] * value for name, value in losses.items())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(list(self.mimi.parameters()) + list(self.probe.parameters()), 1.0)
        self.optimizer.step()
        self.step += 1
        figures = {name: value.item() for name, value in losses.items()}
        figures["phoneme_accuracy"] = (logits.argmax(1) == target).float().mean().item()
        entropy = result.metrics.get("rvq_entropy")
        if entropy is not None:
            figures["rvq_entropy"] = float(entropy.item())
        return figures

    def save(self) -> None:
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"mimi": self.mimi.state_dict(), "probe": self.probe.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "step": self.step, "inventory": self.inventory},
                   out / "train-state.pt")
        export_codec(self.mimi, out)


def export_codec(mimi, folder: Path) -> None:
    """The codec alone, as a Kyutai-layout folder expects it."""
    state = {key: value.detach().contiguous().cpu() for key, value in mimi.state_dict().items()}
    save_file(state, str(folder / "mimi.safetensors"))
    (folder / "mimi_config.json").write_text(json.dumps(ANTIPHON_SMALL_MIMI, indent=2))


def run(args: argparse.Namespace) -> None:
    trainer = CodecTrainer(args)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60
    deadline = time.monotonic() + budget
    log = open(args.out / "log.jsonl", "a")
    averages: dict[str, list[float]] = {}
    with tqdm(initial=trainer.step, total=min(args.steps, trainer.step + 10**6), unit="step",
              desc="codec", dynamic_ncols=True) as bar:
        while trainer.step < args.steps and time.monotonic() < deadline:
            trainer.set_learning_rate(cooldown_scale(deadline - time.monotonic(), budget * args.cooldown))
            figures = trainer.train_step()
            for name, value in figures.items():
                averages.setdefault(name, []).append(value)
            bar.update(1)
            if trainer.step % 50 == 0:
                means = {name: round(float(np.mean(values)), 4) for name, values in averages.items()}
                averages.clear()
                log.write(json.dumps({"step": trainer.step, "time": time.time(),
                                     "lr": trainer.optimizer.param_groups[0]["lr"], **means}) + "\n")
                log.flush()
                bar.set_postfix(mel=means["mel"], phon=means["phoneme_accuracy"])
            if trainer.step % 2000 == 0:
                trainer.save()
    trainer.save()
    log.close()
