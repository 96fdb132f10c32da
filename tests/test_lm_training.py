"""The LM's training data (Moshi's monologue alignment) and a CPU smoke run of `antiphon train lm`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from moshi.models import loaders
from moshi.models.lm import LMGen
from moshi.utils.compile import no_cuda_graph
from safetensors.torch import load_file

from antiphon.models.configs import ANTIPHON_SMALL_LM, ANTIPHON_SMALL_MIMI
from antiphon.models.data.dataset import generate, read_split
from antiphon.models.loader import lm_kwargs_of, load_codec, load_model
from antiphon.models.train import lm
from antiphon.models.train.codec import export_codec
from antiphon.models.train.lm_data import (END_OF_PADDING, FRAME_RATE, HEARD_DELAY_FRAMES, HEARD_ROW, PADDING,
                                           REPLY_SILENCE_FRAMES, align_heard_text, align_text, encode_tracks,
                                           reply_starts, train_tokenizer, word_onsets)


def run_args(dataset, tmp_path, **overrides) -> argparse.Namespace:
    """`antiphon train lm` arguments for a CPU run on `dataset`, with an untrained codec."""
    codec = tmp_path / "codec"
    codec.mkdir(exist_ok=True)
    export_codec(loaders.get_mimi(None, ANTIPHON_SMALL_MIMI, num_codebooks=8), codec)
    return argparse.Namespace(**{
        "data": dataset, "codec": codec, "out": tmp_path / "run", "tokens": None, "resume": None, "init": None,
        "no_text": False, "device": "cpu", "batch": 2, "max_frames": 60, "lr": 3e-4, "warmup": 5,
        "minutes": 5.0, "steps": 0, "cooldown": 0.3, "vocab": 256, "seed": 0, "agent_noise": 0.1,
        "user_mask": 0.0, "dropout": 0.0, "listening_weight": 0.5, "compile": None,
        "cuda_graph": False, **overrides})


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
            if first > next_free:  # a word after silence: the frame before it ends the padding
                assert row[first - 1] == END_OF_PADDING
            position += len(pieces)
            next_free = first + len(pieces)


def test_reply_starts_are_where_each_turns_reply_begins(dataset, tmp_path):
    tokenizer = train_tokenizer(dataset, tmp_path / "tokenizer", 256)
    for split in ("train", "heldout"):
        for record in read_split(dataset, split):
            frames = int(np.ceil(record.meta["duration"] * FRAME_RATE))
            row = align_text(record.meta["agent_words"], frames, tokenizer)
            replies = {int(turn["agent_start"] * FRAME_RATE) for turn in record.meta["turns"]}
            assert set(np.flatnonzero(reply_starts(row)).tolist()) == replies
            # the tensors training reads give the same frames
            assert torch.equal(reply_starts(torch.from_numpy(row)), torch.from_numpy(reply_starts(row)))


def test_lm_training_runs_resumes_and_exports_a_loadable_model(dataset, tmp_path):
    args = run_args(dataset, tmp_path, no_text=False, steps=3, user_mask=0.1)
    lm.run(args)
    log = [json.loads(line) for line in (args.out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and np.isfinite(log[-1]["heldout_semantic"])
    assert 0 <= log[-1]["heldout_free_onset_accuracy"] <= 1  # the model decoded on its own
    assert 0 <= log[-1]["heldout_free_reply_start_accuracy"] <= 1
    assert 0 <= log[-1]["heldout_reply_start_accuracy"] <= 1
    assert np.isfinite(log[-1]["heldout_listening"]) and 0 <= log[-1]["heldout_listening_accuracy"] <= 1

    resumed = lm.LMTrainer(argparse.Namespace(**{**vars(args), "resume": args.out / "train-state.pt"}))
    assert resumed.step == 3
    resumed.train_step(1.0)

    exported = args.out / "model" / "model.safetensors"  # a later run starts from these weights
    started = lm.LMTrainer(argparse.Namespace(**{**vars(args), "init": exported}))
    assert started.step == 0
    for name, tensor in load_file(str(exported)).items():
        assert torch.equal(started.lm.state_dict()[name], tensor.float()), name

    later = tmp_path / "later"  # a run started from those weights keeps the tokenizer they were trained with
    later.mkdir()
    tokenizer = (args.out / "tokenizer.model").read_bytes()
    (later / "tokenizer.model").write_bytes(tokenizer)
    lm.prepare(argparse.Namespace(**{**vars(args), "out": later, "vocab": 64}), torch.device("cpu"))
    assert (later / "tokenizer.model").read_bytes() == tokenizer and (later / "tokens-heldout.npz").is_file()

    model = load_model(str(args.out / "model"))  # the exported folder, through the serving loader
    assert model.lm.dtype == torch.float32 and not model.untrained
    assert model.lm.text_card == 256 and model.lm.dep_q == 8
    tokens = np.load(args.out / "tokens-train.npz")["codes"]
    assert tokens.shape[0] == 18 and tokens.dtype == np.int16


def test_audio_only_ablation_holds_its_text_stream_at_padding(dataset, tmp_path):
    args = run_args(dataset, tmp_path, no_text=True, steps=0)
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    codes = trainer.codes(trainer.train_set, [0, 1])
    text = codes[:, 0]
    assert ((text == PADDING) | (text == trainer.lm.zero_token_id)).all()
    assert (codes[:, 1:] == trainer.train_set.batch([0, 1], 60, trainer.lm.zero_token_id)[:, 1:]).all()


def test_padding_at_a_conversations_end_changes_no_loss(dataset, tmp_path):
    """A batch pads shorter conversations to the longest; the padded frames (where moshi's logits are
    NaN) must not reach a figure or a gradient."""
    args = run_args(dataset, tmp_path, steps=0, max_frames=10**4)
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    trainer.lm.eval()
    lengths = [c.shape[1] for c in trainer.train_set.conversations]
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[short] < lengths[long]
    alone = trainer.codes(trainer.train_set, [short])
    padded = trainer.codes(trainer.train_set, [short, long])[:1]
    assert padded.shape[-1] > alone.shape[-1]
    figures = trainer.losses(alone)
    padded_figures = trainer.losses(padded)
    for name, value in figures.items():
        assert torch.isclose(padded_figures[name], value, rtol=1e-4, atol=1e-5), name
    sum(padded_figures[name] for name in ("text", "semantic", "acoustic", "listening")).backward()
    assert all(torch.isfinite(p.grad).all() for p in trainer.lm.parameters() if p.grad is not None)


def test_a_compiled_training_step_computes_what_the_eager_one_does(dataset, tmp_path):
    """`--compile` pads every batch to --max-frames and runs the LM through torch.compile: the figures
    and gradients must be the eager step's."""
    args = run_args(dataset, tmp_path, steps=0, compile="default")
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    shortest = int(np.argmin([c.shape[1] for c in trainer.train_set.conversations]))
    padded = trainer.codes(trainer.train_set, [shortest], fixed_length=True)
    own_length = trainer.codes(trainer.train_set, [shortest])
    assert padded.shape[-1] == args.max_frames and own_length.shape[-1] <= args.max_frames
    runs = {}
    for name, codes, model in (("eager", own_length, trainer.lm), ("compiled", padded, trainer.stepped_lm)):
        trainer.lm.zero_grad()
        figures = trainer.losses(codes, model=model)
        sum(figures[part] for part in ("text", "semantic", "acoustic")).backward()
        runs[name] = figures, {n: p.grad.clone() for n, p in trainer.lm.named_parameters() if p.grad is not None}
    (eager, eager_grads), (compiled, compiled_grads) = runs["eager"], runs["compiled"]
    for part in eager:
        assert torch.isclose(compiled[part], eager[part], rtol=1e-4, atol=1e-6), part
    assert compiled_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        assert torch.allclose(compiled_grads[name], grad, rtol=1e-3, atol=1e-6), name


def test_a_captured_training_step_needs_a_cuda_device_and_no_compile(dataset, tmp_path):
    """`--cuda-graph` captures the eager step as a CUDA graph (checked on a GPU by
    `models/train/runs/lm_step_time.py --graph-check`); elsewhere it says what it needs."""
    for overrides in ({"device": "cpu"}, {"device": "cuda", "compile": "default"}):
        args = run_args(dataset, tmp_path, cuda_graph=True, **overrides)
        lm.prepare(args, torch.device("cpu"))
        with pytest.raises(ValueError, match="--cuda-graph captures the eager step on a CUDA device"):
            lm.LMTrainer(args)


def test_dropout_changes_training_steps_and_leaves_the_model_as_served(dataset, tmp_path):
    args = run_args(dataset, tmp_path, dropout=0.5)
    lm.prepare(args, torch.device("cpu"))
    trainer = lm.LMTrainer(args)
    plain = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs_of(ANTIPHON_SMALL_LM), device="cpu", dtype=torch.float32)
    plain.load_state_dict(trainer.lm.state_dict())
    codes = trainer.codes(trainer.heldout_set, [0, 1])[:, :lm.STREAMS]
    with torch.no_grad():
        trainer.lm.train()
        first, second = (trainer.lm(codes).text_logits for _ in range(2))
        assert not torch.allclose(first, second, equal_nan=True)
        trainer.lm.eval()
        plain.eval()
        torch.testing.assert_close(trainer.lm(codes).text_logits, plain(codes).text_logits, rtol=0, atol=0,
                                   equal_nan=True)


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


def test_onsets_follow_the_end_of_padding_and_reply_starts_a_silence():
    pause = [PADDING] * (REPLY_SILENCE_FRAMES - 1)
    text = np.array([PADDING, END_OF_PADDING, 40, 41, PADDING, END_OF_PADDING, 42, *pause, END_OF_PADDING, 43])
    last = len(text) - 1
    assert np.flatnonzero(word_onsets(text)).tolist() == [2, 6, last]
    assert np.flatnonzero(reply_starts(text)).tolist() == [2, last]  # not 6: a pause within a reply


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


def test_user_masks_hide_whole_frames_of_the_users_audio_in_short_spans():
    torch.manual_seed(0)
    codes = torch.randint(0, 2048, (8, 17, 500))
    codes[:, :, 450:] = -1
    masked = lm.mask_user_audio(codes, 0.1)
    changed = masked != codes
    assert not changed[:, :9].any()  # the monologue and the agent's audio: as recorded
    hidden = (masked[:, 9:17] == -1).all(dim=1)  # frames where all 8 of the user's codebooks are hidden
    assert (changed[:, 9:17, :450] == hidden[:, None, :450]).all()  # a frame is hidden whole or not at all
    assert (masked[:, :, 450:] == -1).all()  # padding stays padding
    assert 0.07 < hidden[:, :450].float().mean() < 0.11
    for row in hidden[:, :450].int():  # runs of hidden frames: mostly 1-3 frames, two spans may meet
        runs = [len(run) for run in "".join(map(str, row.tolist())).split("0") if run]
        assert runs and max(runs) <= 6 and np.mean(runs) < 3
    assert lm.mask_user_audio(codes, 0.0) is codes


@torch.no_grad()
def test_a_served_step_reads_what_training_reads_at_that_position():
    """Step t of moshi's LMGen, fed user row t - 1 of a token file (the microphone frame that arrived by
    then) and the recorded monologue and agent audio so far, predicts the monologue exactly as training
    does at position t: a model learns under the conditions it is served in."""
    torch.manual_seed(0)
    model = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs_of(ANTIPHON_SMALL_LM), device="cpu",
                                 dtype=torch.float32).eval()
    frames = 12
    codes = torch.randint(0, 2048, (2, 17, frames))
    codes[:, 0] = torch.randint(4, 256, (2, frames))
    trained = model(codes).text_logits[:, 0]                       # [B, frames, card]

    served = []
    lm_gen = LMGen(model, use_sampling=False)
    delays = model.delays[1:1 + model.dep_q]

    def force_recorded_text(logits: torch.Tensor) -> None:
        served.append(logits[:, 0, 0].clone())
        logits.fill_(-1e9)
        logits[torch.arange(2), 0, 0, codes[:, 0, len(served) - 1]] = 0

    lm_gen.on_text_logits_hook = force_recorded_text
    with no_cuda_graph(), lm_gen.streaming(2):
        for t in range(frames):
            agent = torch.stack([codes[:, 1 + k, max(t - delay, 0)] for k, delay in enumerate(delays)], 1)
            lm_gen.step(codes[:, 9:17, max(t - 1, 0), None], depformer_replace_tokens=agent[:, :, None])
    # the last delayed positions of training see initial tokens where serving sees the recording: compare
    # the positions before the largest delay bites
    checked = frames - max(delays)
    torch.testing.assert_close(torch.stack(served, 1)[:, :checked], trained[:, :checked], rtol=1e-4, atol=1e-4)


def test_token_files_hold_the_users_audio_one_frame_ahead(dataset, tmp_path):
    args = run_args(dataset, tmp_path, steps=0)
    lm.prepare(args, torch.device("cpu"))
    tokens = np.load(args.out / "tokens-heldout.npz")
    codes, offsets = tokens["codes"].astype(np.int64), tokens["offsets"]
    records = list(read_split(dataset, "heldout"))
    codec = load_codec(args.codec, torch.device("cpu")).eval()
    for index, (user, agent) in enumerate(zip(
            encode_tracks(codec, [r.tracks["user"] for r in records], torch.device("cpu")),
            encode_tracks(codec, [r.tracks["agent"] for r in records], torch.device("cpu")))):
        conversation = codes[:, offsets[index]:offsets[index + 1]]
        assert (conversation[1:9] == agent).all()
        assert (conversation[9:17, :-1] == user[:, 1:]).all() and (conversation[9:17, -1] == user[:, -1]).all()
        assert (conversation[HEARD_ROW] != PADDING).any()  # and what the user said, as heard


def test_the_users_words_are_transcribed_once_heard_in_full(dataset, tmp_path):
    tokenizer = train_tokenizer(dataset, tmp_path / "tokenizer", 256)
    for record in read_split(dataset, "train"):
        words = record.meta["user_words"]
        frames = int(record.meta["duration"] * FRAME_RATE)
        row = align_heard_text(words, frames, tokenizer)
        heard = row != PADDING
        assert tokenizer.decode(row[heard].tolist()) == " ".join(w["text"] for w in words)
        position = 0
        for word in words:  # each word's first token comes after the word has ended
            first = np.flatnonzero(heard)[position]
            assert first >= np.ceil(word["end"] * FRAME_RATE) + HEARD_DELAY_FRAMES
            position += len(tokenizer.encode(word["text"]))
