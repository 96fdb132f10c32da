"""`antiphon eval model`: the model on the held-out conversations, driven through the real server.

Starts `antiphon serve` on 127.0.0.1 (or uses `--url`), streams each held-out conversation's user track
over a WebSocket at the audio clock (several at once), and scores what comes back against the
conversation's script:
- task accuracy from the monologue: the agent's words after the user's turn begin with the exact answer;
- task accuracy from the speech: the same test on what an independent recognizer (pocketsphinx bound to
  the split's agent sentences and the monologue) hears in the agent's audio, so that a model without a
  monologue (the audio-only ablation) is judged the same way;
- agreement: the recognizer's word error rate on the agent's audio against the monologue;
- latency: from the user's last word to the agent's first monologue word, and to its speech onset;
- interruption: how often the agent falls silent within a second of the user talking over it, and when.

`--reference` scores the conversations' own recorded agent track and script instead of a served model:
what a perfect model would get, so the row shows how far the recognizer itself can judge each task.

Timing: the server steps once per 80 ms input frame; step s returns the monologue token and the audio of
frame s - 1 (Moshi's acoustic delay), so the reply's audio lines up sample for sample with the input.
Results accumulate by `--label` in OUT.json; OUT.md holds the table of every label.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...client.chat import FRAME_SECONDS, SAMPLE_RATE, chat_url, talk
from ...client.local_server import LocalServer
from ..data.conversations import accent_label
from ..data.dataset import Record, read_split
from .recognizer import Recognizer, known_words, word_errors

SILENCE_RMS = 0.01      # agent audio below this (per 80 ms frame) is silence
YIELD_SILENCE = 0.4     # seconds of silence that count as having yielded the floor
YIELD_LIMIT = 1.0       # the task asks the agent to yield within a second


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model to serve (default: the server's default)")
    parser.add_argument("--url", help="an already running server (ws://host:port) instead of starting one")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with a held-out split")
    parser.add_argument("--out", type=Path, required=True, help="results: OUT.json (by label) and OUT.md")
    parser.add_argument("--label", required=True, help="this row's name in the table")
    parser.add_argument("--budget", default="", help="training budget of this row, for the table")
    parser.add_argument("--split", default="heldout", help="which split's conversations (train: a check of fit)")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=2, help="sessions at once")
    parser.add_argument("--query", default="", help="extra query string for every session, e.g. text_temperature=0")
    parser.add_argument("--reference", action="store_true",
                        help="score the recorded agent track and its script instead of a served model: the "
                             "figures a perfect model would get, the recognizer's own ceiling")


@dataclass
class TurnScore:
    task: str
    expected: list[str]
    monologue: list[str]
    heard: list[str]
    latency_text: float | None
    latency_speech: float | None
    accent: str = ""  # the user's espeak-ng accent: held-out voices are partly accents training never heard
    # interruption turns: whether the agent was speaking when the user cut in, and the seconds from the
    # interruption to its silence
    speaking_when_interrupted: bool = False
    yielded_after: float | None = None


def frame_rms(pcm: np.ndarray) -> np.ndarray:
    frames = len(pcm) // 1920
    return np.sqrt((pcm[:frames * 1920].reshape(frames, 1920) ** 2).mean(1)) if frames else np.zeros(0)


def score_conversation(record: Record, pcm: np.ndarray,
                       timed_text: list[tuple[int, str]]) -> list[tuple[TurnScore, np.ndarray]]:
    """Each turn's score (monologue words, timings; recognition comes later) and its reply audio."""
    turns = record.meta["turns"]
    loudness = frame_rms(pcm)
    pieces = [((step - 1) * FRAME_SECONDS, piece) for step, piece in timed_text]
    scored = []
    for index, turn in enumerate(turns):
        start = turn["user_end"]
        end = turns[index + 1]["user_start"] if index + 1 < len(turns) else len(pcm) / SAMPLE_RATE
        said = [(at, piece) for at, piece in pieces if start <= at < end]
        words = "".join(piece for _, piece in said).split()
        onset = next((i * FRAME_SECONDS for i in range(int(np.ceil(start / FRAME_SECONDS)), min(len(loudness),
                      int(end / FRAME_SECONDS))) if loudness[i] >= SILENCE_RMS), None)
        score = TurnScore(turn["task"], turn["answer"].split(), words, [],
                          latency_text=(said[0][0] - start) if said else None,
                          latency_speech=(onset - start) if onset is not None else None,
                          accent=record.user_accent)
        if "interrupt" in turn:
            cut_in = int(turn["interrupt_start"] / FRAME_SECONDS)
            score.speaking_when_interrupted = bool((loudness[max(0, cut_in - 3):cut_in] >= SILENCE_RMS).any())
            score.yielded_after = _silence_after(loudness, turn["interrupt_start"], end)
        window = pcm[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
        scored.append((score, window))
    return scored


def _silence_after(loudness: np.ndarray, since: float, until: float) -> float | None:
    """Seconds from `since` to the start of the first YIELD_SILENCE-long silence, if any before `until`."""
    need = int(round(YIELD_SILENCE / FRAME_SECONDS))
    first = int(since / FRAME_SECONDS)
    last = min(len(loudness), int(until / FRAME_SECONDS))
    for i in range(first, last - need + 1):
        if (loudness[i:i + need] < SILENCE_RMS).all():
            return max(0.0, i * FRAME_SECONDS - since)
    return None


def served_replies(args: argparse.Namespace, records: list[Record]) -> list[tuple[np.ndarray, list]]:
    """Each conversation's reply from the model (its audio and timed monologue), through a real server."""
    query = dict(item.split("=", 1) for item in args.query.split("&") if item)
    server = None if args.url else LocalServer(
        [*(["--model", args.model] if args.model else []), "--slots", str(args.parallel), "--idle-seconds", "60",
         "--log-level", "warning"])
    try:
        replies = asyncio.run(converse(args.url or server.base, records, args.parallel, query))
    finally:
        if server:
            server.stop()
    return [(reply.pcm, reply.timed_text) for reply in replies]


def recorded_monologue(record: Record) -> list[tuple[int, str]]:
    """The script's agent words as the server would send them: (step, piece), a word's piece in the step
    whose frame holds its start."""
    return [(int(word["start"] / FRAME_SECONDS) + 1, " " + word["text"]) for word in record.meta["agent_words"]]


async def converse(url: str, records: list[Record], parallel: int, query: dict[str, str]) -> list:
    gate = asyncio.Semaphore(parallel)

    async def one(record: Record):
        async with gate:
            tail = np.zeros(int(SAMPLE_RATE * 1.0), dtype=np.float32)  # let the last answer finish
            for _ in range(60):
                reply = await talk(chat_url(url, text_frames=1, **query), np.concatenate([record.user, tail]))
                if reply.handshake is not None or reply.close_code != 1013:
                    break
                await asyncio.sleep(0.5)  # the previous session's slot is still being released
            if reply.errors or reply.handshake is None:
                raise RuntimeError(f"{record.meta['id']}: {reply.errors or reply.close_reason}")
            return reply

    return await asyncio.gather(*(one(record) for record in records))


def evaluate(args: argparse.Namespace) -> dict:
    records = list(read_split(args.data, args.split))[:args.conversations]
    began = time.monotonic()
    if args.reference:
        replies = [(record.agent, recorded_monologue(record)) for record in records]
    else:
        replies = served_replies(args, records)
    talk_seconds = time.monotonic() - began
    sentences = {turn["agent"] for record in records for turn in record.meta["turns"]}
    turns = []
    for record, (pcm, timed_text) in zip(records, replies):
        turns += score_conversation(record, pcm, timed_text)
    sentences |= {" ".join(score.monologue) for score, _ in turns}
    # Monologue sentences join the grammar so that the recognizer can hear what the agent meant to say,
    # not only what the script wanted; pieces outside its dictionary cannot be spoken sentences.
    known = known_words()
    recognizer = Recognizer(sorted(s for s in sentences if s and set(s.replace(",", "").split()) <= known))
    for score, window in turns:
        score.heard = recognizer.transcribe(window) if len(window) else []
    return summarize([score for score, _ in turns], talk_seconds, len(records))


def _begins_with(words: list[str], expected: list[str]) -> bool:
    return bool(expected) and words[:len(expected)] == expected


def _accuracies(scores: list[TurnScore], key: str) -> dict[str, dict]:
    """Prompts and accuracies (text, speech) of the scores grouped by one of their fields."""
    groups: dict[str, list[TurnScore]] = {}
    for score in scores:
        groups.setdefault(getattr(score, key), []).append(score)
    return {name: {"prompts": len(group),
                   "accuracy_text": float(np.mean([_begins_with(s.monologue, s.expected) for s in group])),
                   "accuracy_speech": float(np.mean([_begins_with(s.heard, s.expected) for s in group]))}
            for name, group in sorted(groups.items())}


def summarize(scores: list[TurnScore], talk_seconds: float, conversations: int) -> dict:
    answered = [s for s in scores if s.task != "interruption"]
    with_text = [s for s in answered if s.monologue]
    agreement_errors = sum(word_errors(s.monologue, s.heard) for s in with_text)
    agreement_words = sum(len(s.monologue) for s in with_text)
    # only an agent that was speaking when the user cut in can yield
    interruptions = [s for s in scores if s.task == "interruption" and s.speaking_when_interrupted]
    yielded = [s.yielded_after for s in interruptions if s.yielded_after is not None
               and s.yielded_after <= YIELD_LIMIT]

    def median(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    return {
        "conversations": conversations, "prompts": len(answered), "seconds": round(talk_seconds, 1),
        "accuracy_text": float(np.mean([_begins_with(s.monologue, s.expected) for s in answered])),
        "accuracy_speech": float(np.mean([_begins_with(s.heard, s.expected) for s in answered])),
        "by_task": _accuracies(answered, "task"),
        "by_accent": _accuracies(answered, "accent"),
        "agreement_wer": agreement_errors / agreement_words if agreement_words else None,
        "latency_text_median": median([s.latency_text for s in answered]),
        "latency_text_p90": _percentile([s.latency_text for s in answered], 90),
        "latency_speech_median": median([s.latency_speech for s in answered]),
        "interruption_prompts": sum(s.task == "interruption" for s in scores),
        "interruptions": len(interruptions), "yielded": len(yielded),
        "yield_median": median(yielded),
        "turns": [vars(s) for s in scores],
    }


def _percentile(values: list[float | None], q: float) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.percentile(present, q)) if present else None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def table(results: dict[str, dict]) -> str:
    lines = ["# Model evaluation (held-out split, through the real server)", "",
             "Each row: held-out conversations (unseen user voices, prompts never heard in training) streamed to "
             "`antiphon serve` over WebSockets at the audio clock. Accuracy: the reply begins with the exact "
             "expected answer, read from the monologue (text) or from what pocketsphinx hears in the agent's "
             "audio (speech). Agreement: the recognizer's word error rate on the agent's audio against the "
             "monologue. Latency: user's last word to the agent's first monologue word (median, p90) and to "
             "its speech onset (median). Interruption: of the interruptions that found the agent speaking "
             "(audible in the 0.24 s before), how many it yielded, falling silent for 0.4 s within 1 s of the "
             "user talking over it.", "",
             "| model | training budget | prompts | accuracy (text) | accuracy (speech) | agreement WER | "
             "latency to first word (p50 / p90) | latency to speech (p50) | yields within 1 s (median) | interrupted while speaking |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        agreement = "-" if r["agreement_wer"] is None else f"{100 * r['agreement_wer']:.1f} %"
        text_accuracy = f"{100 * r['accuracy_text']:.1f} %" if r["latency_text_median"] is not None else "-"
        lines.append(
            f"| {label} | {r.get('budget', '')} | {r['prompts']} | {text_accuracy} | "
            f"{100 * r['accuracy_speech']:.1f} % | {agreement} | "
            f"{_seconds(r['latency_text_median'])} / {_seconds(r['latency_text_p90'])} | "
            f"{_seconds(r['latency_speech_median'])} | {r['yielded']}/{r['interruptions']} "
            f"({_seconds(r['yield_median'])}) | {r['interruptions']}/{r['interruption_prompts']} |")
    lines += _group_table(results, "by_task", "By task (accuracy text / speech, prompts):", str)
    lines += _group_table(results, "by_accent", "By the user's accent (accuracy text / speech, prompts):",
                          accent_label)
    commands = [f"- {label}: `{r['command']}`" for label, r in results.items()]
    return "\n".join(lines + ["", "Commands:", ""] + commands) + "\n"


def _group_table(results: dict[str, dict], key: str, title: str, name: Callable[[str], str]) -> list[str]:
    """A table of each row's accuracies by group (rows evaluated before a grouping existed show -)."""
    groups = sorted({group for r in results.values() for group in r.get(key, {})})
    lines = ["", title, "", "| model | " + " | ".join(name(g) for g in groups) + " |",
             "|---|" + "---|" * len(groups)]
    for label, r in results.items():
        figures = r.get(key, {})
        cells = [f"{100 * figures[g]['accuracy_text']:.0f} / {100 * figures[g]['accuracy_speech']:.0f} "
                 f"({figures[g]['prompts']})" if g in figures else "-" for g in groups]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def run(args: argparse.Namespace) -> None:
    result = evaluate(args)
    result["budget"] = args.budget
    result["command"] = " ".join(["antiphon", "eval", "model"] + [
        f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}") for name, value in vars(args).items()
        if name in {"model", "data", "split", "out", "label", "conversations", "parallel", "query", "reference"}
        and value])
    path = args.out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[args.label] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table(results))
    print(table(results))
