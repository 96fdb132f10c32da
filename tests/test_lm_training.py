"""The LM's training data (Moshi's monologue alignment) and a CPU smoke run of `antiphon train lm`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from moshi.models import loaders

from antiphon.models.configs import ANTIPHON_SMALL_MIMI
from antiphon.models.data.dataset import generate, read_split
from antiphon.models.loader import load_model
from antiphon.models.train import lm
from antiphon.models.train.codec import export_codec
from antiphon.models.train.lm_data import END_OF_PADDING, FRAME_RATE, PADDING, align_text, train_tokenizer


def run_args(dataset, tmp_path, **overrides) -> argparse.Namespace:
    """`antiphon train lm` arguments for a CPU run on `dataset`, with an untrained codec."""
    codec = tmp_path / "codec"
    codec.mkdir(exist_ok=True)
    export_codec(loaders.get_mimi(None, ANTIPHON_SMALL_MIMI, num_codebooks=8), codec)
    return argparse.Namespace(**{
        "data": dataset, "codec": codec, "out": tmp_path / "run", "tokens": None, "resume": None,
        "no_text": False, "device": "cpu", "batch": 2, "max_frames": 60, "lr": 3e-4, "warmup": 5,
        "minutes": 5.0, "steps": 0, "cooldown": 0.3, "vocab": 256, "seed": 0, "agent_noise": 0.1,
        **overrides})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("conversations")
    generate(root, {"train": 6, "heldout": 2}, seed=5, shard_size=4)
    return root


def test_monologue_holds_each_agent_word_from_the_frame_it_starts(dataset, tmp_path):
    tokenizer = train_tokenizer(dataset, tmp_path / "tokenizer", 256)
    assert [tokenizer.id_to_piece(i) for i in (END_OF_PADDING, PADDING)] == ["<unk>", "<pad>"]
    for record in read_split(dataset, "train"):
        words = record.meta["agent_words"]
        frames = int(np.ceil(record.meta["duration"] * FRAME_RATE))
        row = align_text(words, frames, tokenizer)
        text_frames = np.flatnonzero((row != PADDING) & (row != END_OF_PADDING))
        # the tokens, read in order, spell the agent's words
        assert tokenizer.decode(row[text_frames].tolist()) == " ".join(w["text"] for w in words)
        # each word's first token sits in the 80 ms frame where the word starts, or just after the
        # previous word's tokens when words come faster than tokens fit
        position = 0
        next_free = 0
        for word in words:
            pieces = tokenizer.encode(word["text"])
            first = text_frames[position]
            assert first == max(int(word["start"] * FRAME_RATE), next_free)
            assert first - int(word["start"] * FRAME_RATE) <= 2
            if first > next_free:  # a word after silence: the frame before it ends the padding
                assert row[first - 1] == END_OF_PADDING
            position += len(pieces)
            next_free = first + len(pieces)


def test_lm_training_runs_resumes_and_exports_a_loadable_model(dataset, tmp_path):
    args = run_args(dataset, tmp_path, no_text=False, steps=3)
    lm.run(args)
    log = [json.loads(line) for line in (args.out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and np.isfinite(log[-1]["heldout_semantic"])
    assert 0 <= log[-1]["heldout_free_onset_accuracy"] <= 1  # the model decoded on its own

    resumed = lm.LMTrainer(argparse.Namespace(**{**vars(args), "resume": args.out / "train-state.pt"}))
    assert resumed.step == 3
    resumed.train_step(1.0)

    model = load_model(str(args.out / "model"))  # the exported folder, through the serving loader
    assert model.lm.dtype == torch.float32 and not model.untrained
    assert model.lm.text_card == 256 and model.lm.dep_q == 8
    tokens = np.load(args.out / "tokens-train.npz")["codes"]
    assert tokens.shape[0] == 17 and tokens.dtype == np.int16


def test_audio_only_ablation_holds_its_text_stream_at_padding(dataset, tmp_path):
    args = run_args(dataset, tmp_path, no_text=True, steps=0)
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    codes = trainer.codes(trainer.train_set, [0, 1])
    text = codes[:, 0]
    assert ((text == PADDING) | (text == trainer.lm.zero_token_id)).all()
    assert (codes[:, 1:] == trainer.train_set.batch([0, 1], 60, trainer.lm.zero_token_id)[:, 1:]).all()


def test_fresh_conversations_reach_a_running_training(dataset, tmp_path):
    from antiphon.models.train import lm_supply

    args = run_args(dataset, tmp_path, no_text=False, steps=0)
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    first = len(trainer.train_set)
    supply = argparse.Namespace(tokens=args.out, codec=args.codec, work=tmp_path / "work", chunk=3, minutes=0.0001,
                                workers=1, device="cpu")
    lm_supply.run(supply)
    assert sorted(p.name for p in args.out.glob("tokens-train*.npz")) == ["tokens-train-1.npz", "tokens-train.npz"]
    assert not (tmp_path / "work" / "chunk-1").exists()  # the audio is gone once tokenized
    assert trainer.train_set.refresh() == 3 and len(trainer.train_set) == first + 3
    assert lm_supply.next_chunk(args.out) == 2
    trainer.train_step(1.0)


def test_reply_onsets_are_words_after_the_end_of_padding():
    from antiphon.models.train.lm_probe import reply_onsets

    text = np.array([PADDING, END_OF_PADDING, 40, 41, PADDING, PADDING, END_OF_PADDING, 42, END_OF_PADDING, 43])
    assert reply_onsets(text) == [2, 7, 9]


def test_agent_audio_noise_touches_only_the_agents_audio_tokens():
    torch.manual_seed(0)
    codes = torch.randint(0, 2048, (4, 17, 500))
    codes[:, :, 450:] = -1  # padding after the end of a conversation
    noisy = lm.corrupt_agent_audio(codes, 0.1, 2048)
    changed = noisy != codes
    assert not changed[:, 0].any() and not changed[:, 9:].any()  # text and the user's audio: as recorded
    assert 0.08 < changed[:, 1:9, :450].float().mean() < 0.11  # ~10 % of the agent's (some draw the same)
    assert (noisy[:, :, 450:] == -1).all() and (noisy >= -1).all() and (noisy < 2048).all()
    assert lm.corrupt_agent_audio(codes, 0.0, 2048) is codes
