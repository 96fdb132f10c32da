"""The shipped codec (weights/antiphon-small): read through the model loader and streamed 80 ms at a time
as a session streams it, it keeps speech intelligible, in the agent's voice and in voices it never heard."""

from __future__ import annotations

import numpy as np
import torch

from antiphon.models.configs import DEFAULT_MODEL
from antiphon.models.eval.codec_eval import stream_through
from antiphon.models.eval.recognizer import Recognizer
from antiphon.models.loader import WEIGHTS_DIR, load_codec
from antiphon.models.train.audio_losses import mel_distance_db
from speech import espeak

SPOKEN = [("yes the sky is blue", "en-us+f3"), ("no a lemon is yellow", "en-gb-x-gbcwmd"),
          ("three four five six", "en-us+f3"), ("eleven", "en+m3"), ("hello there how can i help", "en-us+f3"),
          ("c a t", "en-gb-x-gbcwmd"), ("good evening how are you", "en-gb-x-gbcwmd")]


def test_shipped_codec_reconstructs_speech_a_recognizer_still_understands():
    mimi = load_codec(WEIGHTS_DIR / DEFAULT_MODEL).eval()
    assert sum(p.numel() for p in mimi.parameters()) < 6e6
    recognizer = Recognizer([sentence for sentence, _ in SPOKEN])
    rng = np.random.default_rng(0)
    heard_original = heard_codec = 0
    for sentence, voice in SPOKEN:
        speech = 0.5 * espeak(sentence, voice)
        pcm = np.concatenate([np.zeros(4800, np.float32), speech, np.zeros(9600, np.float32)])
        pcm += rng.normal(0, 1e-3, len(pcm)).astype(np.float32)  # a microphone's noise floor, -60 dB
        rebuilt = stream_through(mimi, pcm)
        # an untrained codec of this configuration is ~15 dB off; this one 3-4 dB on these clips
        distance = mel_distance_db(torch.from_numpy(rebuilt)[None], torch.from_numpy(pcm[:len(rebuilt)])[None])
        assert distance < 5.0, (sentence, voice, distance)
        heard_original += recognizer.transcribe(pcm) == sentence.split()
        heard_codec += recognizer.transcribe(rebuilt) == sentence.split()
    # The recognizer, bound to these sentences, gets every original word for word, and at least two
    # thirds of them through the codec (an untrained codec: none). Figures over the held-out split:
    # benchmarks/results/codec_eval.md.
    assert heard_original == len(SPOKEN)
    assert heard_codec >= 2 * len(SPOKEN) / 3, heard_codec


def test_the_codec_evaluation_counts_each_user_track_once_under_its_accent(tmp_path):
    """`antiphon eval codec` reports the users by accent beside their total, so that an accent the codec
    keeps less of shows itself: each user track and recognized word belongs to exactly one accent row."""
    import argparse

    from antiphon.models.data.conversations import accent_label
    from antiphon.models.data.dataset import generate, read_split
    from antiphon.models.eval.codec_eval import evaluate, table

    generate(tmp_path, {"heldout": 4}, seed=5, shard_size=4)
    args = argparse.Namespace(data=tmp_path, codec=WEIGHTS_DIR / DEFAULT_MODEL, conversations=4, recognized=4,
                              threads=2)
    result = evaluate(args)
    accents = {record.user_accent for record in read_split(tmp_path, "heldout")}
    assert set(result["user_accents"]) == accents
    users, rows = result["sides"]["user"], result["user_accents"].values()
    assert sum(row["tracks"] for row in rows) == 4
    assert users["words"] > 0
    for figure in ("utterances", "words"):
        assert sum(row[figure] for row in rows) == users[figure]
    errors = sum(row["wer_codec"] * row["words"] for row in rows)
    assert abs(errors - users["wer_codec"] * users["words"]) < 1e-6
    report = table(result, "antiphon eval codec ...")
    for accent in accents:
        assert f"| {accent_label(accent)} |" in report
