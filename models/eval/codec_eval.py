"""`antiphon eval codec`: the codec on the held-out conversations, streamed frame by frame as the server
streams it.

Reports, for the agent's voice and the (unseen) user voices apart, and for the users by accent: mel
distance between original and reconstruction; the word error rate of an independent recognizer
(pocketsphinx, bound to the split's sentences) on each original and reconstructed utterance, side by
side; the bitrate; and the CPU streaming speed (80 ms frames encoded and decoded per second, for 1 and 4
sessions batched). What the codec loses of a voice, the LM cannot hear: an accent whose error rate grows
through the codec more than others' do is one the codec keeps less of.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from moshi.models.compression import MimiModel

from ..data.conversations import accent_label
from ..data.dataset import Record, read_split
from ..loader import load_codec
from ..reference import frames_of
from ..train.audio_losses import mel_distance_db
from .recognizer import Recognizer, word_errors

SAMPLE_RATE = 24000
FRAME = 1920
MARGIN = 0.15  # seconds kept around an utterance when it is cut out for the recognizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder with a held-out split")
    parser.add_argument("--codec", type=Path, required=True, help="folder with mimi.safetensors, mimi_config.json")
    parser.add_argument("--out", type=Path, required=True, help="results: OUT.md and OUT.json")
    parser.add_argument("--conversations", type=int, default=200, help="held-out conversations for mel distance")
    parser.add_argument("--recognized", type=int, default=60,
                        help="of which this many also go through the recognizer (it runs at ~2x real time)")
    parser.add_argument("--threads", type=int, default=2)


@torch.no_grad()
def stream_through(mimi: MimiModel, pcm: np.ndarray) -> np.ndarray:
    """Encode and decode one track 80 ms at a time, as a session does."""
    out = []
    with mimi.streaming(1):
        for frame in frames_of(pcm):
            out.append(mimi.decode(mimi.encode(torch.from_numpy(frame)[None, None]))[0, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def utterances(record: Record, side: str) -> list[tuple[str, float, float]]:
    """(sentence, start, end) of each thing one side says."""
    words = record.meta[f"{side}_words"]
    sentences = []
    for turn in record.meta["turns"]:
        start, end = turn[f"{side}_start"], turn[f"{side}_end"]
        said = [w for w in words if start - 1e-3 <= w["start"] and w["end"] <= end + 1e-3]
        if said:
            sentences.append((" ".join(w["text"] for w in said), said[0]["start"], said[-1]["end"]))
    return sentences


@torch.no_grad()
def streaming_speed(mimi: MimiModel, sessions: int, frames: int = 100) -> float:
    """80 ms frames per second, per session, encoding and decoding `sessions` streams batched."""
    pcm = torch.randn(sessions, 1, FRAME) * 0.1
    with mimi.streaming(sessions):
        for _ in range(10):
            mimi.decode(mimi.encode(pcm))
        began = time.perf_counter()
        for _ in range(frames):
            mimi.decode(mimi.encode(pcm))
    return frames / (time.perf_counter() - began)


def evaluate(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    mimi = load_codec(args.codec).eval()
    records = list(read_split(args.data, "heldout"))[:args.conversations]
    sides = {side: _Figures() for side in ("agent", "user")}
    accents: dict[str, _Figures] = {}
    recognizers = {side: Recognizer(sorted({u[0] for r in records for u in utterances(r, side)}))
                   for side in sides}
    for index, record in enumerate(records):
        for side, figures in sides.items():
            counted = [figures]
            if side == "user":
                counted.append(accents.setdefault(record.user_accent, _Figures()))
            original = getattr(record, side)
            rebuilt = stream_through(mimi, original)
            original = original[:len(rebuilt)]
            mel_db = mel_distance_db(torch.from_numpy(rebuilt)[None], torch.from_numpy(original)[None])
            for each in counted:
                each.mel_db.append(mel_db)
            if index >= args.recognized:
                continue
            for sentence, start, end in utterances(record, side):
                cut = slice(int(max(0.0, start - MARGIN) * SAMPLE_RATE), int((end + MARGIN) * SAMPLE_RATE))
                if cut.stop > len(rebuilt):
                    continue
                reference = sentence.split()
                errors_original = word_errors(reference, recognizers[side].transcribe(original[cut]))
                errors_codec = word_errors(reference, recognizers[side].transcribe(rebuilt[cut]))
                for each in counted:
                    each.count(len(reference), errors_original, errors_codec)
    config = json.loads((args.codec / "mimi_config.json").read_text())
    bits = config["quantizer"]["n_q"] * int(np.log2(config["quantizer"]["bins"]))
    return {
        "conversations": len(records), "recognized_conversations": min(args.recognized, len(records)),
        "bitrate_bps": bits * config["frame_rate"],
        "parameters": sum(p.numel() for p in mimi.parameters()),
        "sides": {side: f.summary() for side, f in sides.items()},
        "user_accents": {accent: f.summary() for accent, f in sorted(accents.items())},
        "frames_per_second": {str(n): streaming_speed(mimi, n) for n in (1, 4)},
        "threads": args.threads,
        "data": _generated_by(args.data),
    }


@dataclass
class _Figures:
    """One group of tracks' mel distances and recognized words."""
    mel_db: list[float] = field(default_factory=list)
    utterances: int = 0
    words: int = 0
    errors_original: int = 0
    errors_codec: int = 0

    def count(self, words: int, errors_original: int, errors_codec: int) -> None:
        self.utterances += 1
        self.words += words
        self.errors_original += errors_original
        self.errors_codec += errors_codec

    def summary(self) -> dict:
        return {"tracks": len(self.mel_db), "mel_db": float(np.mean(self.mel_db)), "utterances": self.utterances,
                "words": self.words, "wer_original": self.errors_original / max(self.words, 1),
                "wer_codec": self.errors_codec / max(self.words, 1)}


def _generated_by(root: Path) -> str:
    """The dataset card's line that says how the data was generated."""
    card = root / "card.md"
    lines = card.read_text().splitlines() if card.is_file() else []
    return next((line for line in lines if line.startswith("Generated by")), str(root))


def table(result: dict, command: str) -> str:
    lines = ["# Codec evaluation (held-out split)", "", f"`{command}`", "", f"Data: {result['data']}", "",
             f"{result['parameters'] / 1e6:.1f} M parameters, {result['bitrate_bps'] / 1000:.2f} kbit/s "
             f"(8 codebooks x 11 bits x 12.5 frames/s). Each track is encoded and decoded 80 ms at a time, as "
             f"a session streams it. Mel distance over {result['conversations']} conversations; word error "
             f"rate of pocketsphinx (bound to the split's sentences) over the first "
             f"{result['recognized_conversations']}.", "",
             "| voices | utterances | words | mel distance (dB) | WER original | WER through the codec |",
             "|---|---|---|---|---|---|"]
    for side, label in (("agent", "agent (en-us+f3)"), ("user", "users (unseen voices, augmented)")):
        f = result["sides"][side]
        lines.append(f"| {label} | {f['utterances']} | {f['words']} | {f['mel_db']:.2f} | "
                     f"{100 * f['wer_original']:.1f} % | {100 * f['wer_codec']:.1f} % |")
    lines += ["", "Users by accent:", "",
              "| accent | tracks | utterances | words | mel distance (dB) | WER original | WER through the codec |",
              "|---|---|---|---|---|---|---|"]
    for accent, f in result["user_accents"].items():
        lines.append(f"| {accent_label(accent)} | {f['tracks']} | {f['utterances']} | {f['words']} | "
                     f"{f['mel_db']:.2f} | {100 * f['wer_original']:.1f} % | {100 * f['wer_codec']:.1f} % |")
    speeds = result["frames_per_second"]
    lines += ["", f"CPU streaming speed ({result['threads']} threads; real time is 12.5 frames/s a session):", "",
              "| sessions | frames/s per session | x real time |", "|---|---|---|"]
    for sessions, fps in speeds.items():
        lines.append(f"| {sessions} | {fps:.0f} | {fps / 12.5:.1f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> None:
    result = evaluate(args)
    command = (f"antiphon eval codec --data {args.data} --codec {args.codec} --out {args.out} "
               f"--conversations {args.conversations} --recognized {args.recognized}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(result, command))
    print(table(result, command))
