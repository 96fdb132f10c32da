"""Scoring a served conversation against its script: answers, latency and interruptions."""

from __future__ import annotations

import numpy as np

from antiphon.client.chat import SAMPLE_RATE
from antiphon.models.data.dataset import Record
from antiphon.models.eval.model_eval import score_conversation, summarize


def record(turns: list[dict], seconds: float) -> Record:
    silence = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)
    return Record({"id": "t", "turns": turns}, {"user": silence, "agent": silence})


def speech(pcm: np.ndarray, start: float, end: float) -> None:
    pcm[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] = 0.1


def test_answers_latency_and_yields_are_read_from_the_reply():
    turns = [
        {"task": "arithmetic", "user": "what is three plus four", "answer": "seven", "agent": "seven",
         "user_start": 0.5, "user_end": 1.5},
        {"task": "interruption", "user": "count from one to ten", "answer": "", "agent": "one two three",
         "user_start": 3.0, "user_end": 4.0, "interrupt": "stop", "interrupt_start": 6.0},
        {"task": "interruption", "user": "count from two to eleven", "answer": "", "agent": "two",
         "user_start": 9.0, "user_end": 10.0, "interrupt": "stop", "interrupt_start": 12.0},
    ]
    pcm = np.zeros(15 * SAMPLE_RATE, dtype=np.float32)
    speech(pcm, 1.9, 2.4)    # "seven", 0.4 s after the user's last word
    speech(pcm, 4.4, 6.56)   # counting, falls silent 0.56 s after being interrupted
    speech(pcm, 10.4, 11.0)  # already quiet when the user cuts in: nothing to yield
    # the monologue: step s carries frame s - 1, so "seven" at step 25 sits at 1.92 s
    timed_text = [(25, " seven"), (56, " one"), (62, " two"), (68, " three"), (131, " two")]
    scores = [score for score, _ in score_conversation(record(turns, 15), pcm, timed_text)]
    assert scores[0].monologue == ["seven"] and abs(scores[0].latency_text - 0.42) < 1e-6
    assert 0.42 - 0.08 <= scores[0].latency_speech <= 0.42  # at the resolution of an 80 ms frame
    assert scores[1].speaking_when_interrupted and abs(scores[1].yielded_after - 0.56) < 0.09
    assert not scores[2].speaking_when_interrupted
    summary = summarize(scores, talk_seconds=15, conversations=1)
    assert summary["accuracy_text"] == 1.0 and summary["prompts"] == 1
    assert (summary["interruption_prompts"], summary["interruptions"], summary["yielded"]) == (3 - 1, 1, 1)


def test_the_recorded_agent_scores_every_answer_and_sets_the_recognizers_ceiling(tmp_path):
    """`--reference` puts the script itself through the scoring: a perfect model. Its monologue must score
    every answer at the script's own reply gap; its speech, what the recognizer can judge at best."""
    import argparse

    from antiphon.models.data.conversations import REPLY_GAP
    from antiphon.models.data.dataset import generate, read_split
    from antiphon.models.eval.model_eval import evaluate

    generate(tmp_path, {"heldout": 6}, seed=5, shard_size=6)
    args = argparse.Namespace(data=tmp_path, split="heldout", conversations=6, reference=True)
    summary = evaluate(args)
    assert summary["prompts"] > 0 and summary["accuracy_text"] == 1.0
    # a word's piece is sent in the step whose 80 ms frame holds its start
    assert REPLY_GAP[0] - 0.08 <= summary["latency_text_median"] <= REPLY_GAP[1]
    assert 0 < summary["accuracy_speech"] <= 1.0
    # every prompt is counted once, under its user's accent
    accents = {record.user_accent for record in read_split(tmp_path, "heldout")}
    assert set(summary["by_accent"]) <= accents
    assert sum(group["prompts"] for group in summary["by_accent"].values()) == summary["prompts"]
