"""A CPU smoke run of codec training, its export read back the way a Kyutai folder's codec is read."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from moshi.models import loaders

from antiphon.models.data.dataset import generate
from antiphon.models.train import codec


def test_codec_training_runs_logs_resumes_and_exports(tmp_path):
    data = tmp_path / "data"
    generate(data, {"train": 6}, seed=1, shard_size=3)
    args = argparse.Namespace(data=data, out=tmp_path / "run", resume=None, device="cpu", batch=2,
                              crop_frames=10, lr=5e-4, minutes=5.0, steps=50, seed=0, init=None,
                              cooldown=0.0)
    codec.run(args)
    log = [json.loads(line) for line in (args.out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 50
    assert all(np.isfinite(entry["mel"]) and 0 <= entry["phoneme_accuracy"] <= 1 for entry in log)

    resumed = argparse.Namespace(**{**vars(args), "resume": args.out / "train-state.pt", "steps": 52})
    trainer = codec.CodecTrainer(resumed)
    assert trainer.step == 50
    trainer.train_step()

    config = json.loads((args.out / "mimi_config.json").read_text())
    mimi = loaders.get_mimi(str(args.out / "mimi.safetensors"), config, num_codebooks=8)
    with torch.no_grad(), mimi.streaming(1):
        codes = mimi.encode(torch.randn(1, 1, 1920) * 0.1)
        assert codes.shape == (1, 8, 1)
        assert mimi.decode(codes).shape == (1, 1, 1920)
