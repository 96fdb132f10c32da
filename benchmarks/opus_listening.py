"""Does the Opus round trip that served audio takes cost the LM its hearing? Teacher-forced accuracy on
held-out conversations with the user's track as the dataset has it and as the server hears it.

Training tokenizes each recorded track directly; served, the user's audio reaches the codec through the
client's Ogg Opus encoder and the server's decoder (`models/data/opus_channel.py`). For each conversation
the versions of the user's track are encoded by the model's codec, laid out as training lays out its
token rows (`models/train/lm_data.py`), and read by the LM at once: the share of monologue word tokens
and of reply starts whose most likely token is the script's, by the user's accent, and how many of the
user's codec tokens the round trip changed. The round trip also delays the audio (by the encoder's
look-ahead), which moves the codec's frames against the speech: each version is also read with that delay
added or taken away, so that the delay and the compression are told apart.

    python benchmarks/opus_listening.py --model FOLDER --data DATA [--conversations 110]
        [--out benchmarks/results/opus_listening]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import sentencepiece
import torch

from antiphon.models.data.conversations import accent_label
from antiphon.models.data.dataset import read_split, to_int16
from antiphon.models.data.opus_channel import SAMPLE_RATE, as_served, round_trip_delay, through_opus
from antiphon.models.loader import load_model
from antiphon.models.train.lm_data import align_text, encode_tracks, is_word, reply_starts, stream_rows
from report import write_report


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--conversations", type=int, default=110)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/opus_listening"))
    args = parser.parse_args()
    model = load_model(args.model)
    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(Path(args.model) / "tokenizer.model"))
    records = list(read_split(args.data, "heldout"))[:args.conversations]
    device = torch.device("cpu")
    agents = encode_tracks(model.mimi, [r.tracks["agent"] for r in records], device)
    as_recorded = [r.user for r in records]
    delay = round_trip_delay()
    versions = {"as recorded": as_recorded,
                f"as recorded, {delay} samples later": [np.pad(u, (delay, 0))[:len(u)] for u in as_recorded],
                "through Opus, as served": [as_served(u) for u in as_recorded],
                f"through Opus, {delay} samples earlier": [through_opus(u) for u in as_recorded]}
    users = {version: encode_tracks(model.mimi, [to_int16(u) for u in tracks], device)
             for version, tracks in versions.items()}
    hits: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    changed = []
    for index, record in enumerate(records):
        accent = accent_label(record.user_accent)
        text = align_text(record.meta["agent_words"], agents[index].shape[1], tokenizer)
        target = torch.from_numpy(text)[None, None]
        words, starts = is_word(target)[0, 0], reply_starts(target)[0, 0]
        delayed, through = users[f"as recorded, {delay} samples later"][index], users["through Opus, as served"][index]
        changed.append(float((delayed != through).mean()))
        for version, tracks in users.items():
            codes = stream_rows(text, agents[index], tracks[index]).astype(np.int64)[None]
            out = model.lm(torch.from_numpy(codes))
            correct = (out.text_logits[0, 0].argmax(-1) == target[0, 0]) & out.text_mask[0, 0]
            for measure, where in (("words", words), ("reply starts", starts)):
                where = where & out.text_mask[0, 0]
                for group in ("all", accent):
                    hits[(version, measure, group)] += correct[where].float().tolist()
    groups = ["all"] + sorted({accent_label(r.user_accent) for r in records})
    lines = [f"Model {Path(args.model).name}, {len(records)} held-out conversations of {args.data.name}; "
             f"the round trip delays the user's audio by {delay} samples ({delay / SAMPLE_RATE * 1000:.1f} ms), and "
             f"changes {np.mean(changed):.1%} of the codec tokens of the audio delayed as much.", "",
             "| user audio | measure | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for version in users:
        for measure in ("words", "reply starts"):
            cells = [hits[(version, measure, group)] for group in groups]
            lines.append(f"| {version} | {measure} | "
                         + " | ".join(f"{np.mean(c):.1%} ({len(c)})" if c else "-" for c in cells) + " |")
    write_report(args.out, "Teacher-forced hearing, as recorded and through Opus", "\n".join(lines))


if __name__ == "__main__":
    main()
