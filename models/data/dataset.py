"""Writing and reading the synthetic conversation dataset.

Layout: `ROOT/{train,heldout}/shard-NNNNN.npz` (int16 `user` and `agent` tracks of the shard's
conversations end to end, and their `offsets`) beside `shard-NNNNN.jsonl` (one conversation's metadata a
line: turns, every word and phoneme of both sides with times, augmentation), and `ROOT/card.md`.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .conversations import (FILLER_SHARE, FILLERS, FORMANT_SHAPE, FORMANT_SHAPE_SHARE, OPUS_SHARE, REPLY_GAP,
                            SAMPLE_RATE, SHAPED_FORMANTS, VOCAL_TRACT_WARP, VOWEL_SHIFT_SHARE, VOWELS_SHIFTED,
                            YIELD_DELAY, Generator)

_GENERATOR: Generator | None = None


@dataclass(frozen=True)
class ShardJob:
    root: str
    split: str
    shard: int
    first: int
    count: int
    seed: int
    voices_from: str | None = None
    prompts_from: str | None = None


def _worker_init() -> None:
    global _GENERATOR
    _GENERATOR = Generator()


def write_shard(job: ShardJob) -> dict:
    generator = _GENERATOR or Generator()
    users, agents, lines = [], [], []
    for index in range(job.first, job.first + job.count):
        conversation, user, agent = generator.conversation(index, job.split, job.seed, job.voices_from,
                                                           job.prompts_from)
        users.append(to_int16(user))
        agents.append(to_int16(agent))
        lines.append(json.dumps(conversation.to_json()))
    folder = Path(job.root) / job.split
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([len(u) for u in users])]).astype(np.int64)
    np.savez(folder / f"shard-{job.shard:05d}.npz", user=np.concatenate(users), agent=np.concatenate(agents),
             offsets=offsets)
    (folder / f"shard-{job.shard:05d}.jsonl").write_text("\n".join(lines) + "\n")
    return {"split": job.split, "count": job.count, "seconds": offsets[-1] / SAMPLE_RATE}


def to_int16(pcm: np.ndarray) -> np.ndarray:
    return (np.clip(pcm, -1, 1) * 32767).astype(np.int16)


def generate(root: Path, counts: dict[str, int], seed: int = 0, shard_size: int = 200, workers: int = 1,
             progress=None, heldout_voices: str = "heldout", heldout_prompts: str = "heldout") -> None:
    """`heldout_voices` and `heldout_prompts` ("train") give the held-out split training's voices or
    prompts instead of its own."""
    jobs = []
    for split, total in counts.items():
        crossed = (heldout_voices, heldout_prompts) if split == "heldout" else (None, None)
        for shard, first in enumerate(range(0, total, shard_size)):
            jobs.append(ShardJob(str(root), split, shard, first, min(shard_size, total - first), seed, *crossed))
    _worker_init()  # fails here, once, when espeak-ng is missing (a pool would respawn failing workers)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for result in pool.imap_unordered(write_shard, jobs):
                if progress:
                    progress(result)
            pool.close()  # workers that end by themselves remove their espeak-ng data folders, unlike terminated ones
            pool.join()
    else:
        for job in jobs:
            result = write_shard(job)
            if progress:
                progress(result)
    (root / "card.md").write_text(card(root, seed, counts, heldout_voices, heldout_prompts))


@dataclass
class Record:
    meta: dict
    tracks: dict[str, np.ndarray]  # "user", "agent": int16 at 24 kHz, as stored

    @property
    def user(self) -> np.ndarray:
        return self.tracks["user"].astype(np.float32) / 32767

    @property
    def agent(self) -> np.ndarray:
        return self.tracks["agent"].astype(np.float32) / 32767

    @property
    def user_accent(self) -> str:
        """The user's espeak-ng accent: the voice without its variant ("en-gb-x-rp" of "en-gb-x-rp+m1")."""
        return self.meta.get("user_voice", "").split("+")[0]


def read_split(root: Path, split: str) -> Iterator[Record]:
    for npz in sorted((root / split).glob("shard-*.npz")):
        arrays = np.load(npz)
        offsets = arrays["offsets"]
        sides = {side: arrays[side] for side in ("user", "agent")}  # each access re-reads the file
        lines = npz.with_suffix(".jsonl").read_text().splitlines()
        for index, line in enumerate(lines):
            start, end = offsets[index], offsets[index + 1]
            yield Record(json.loads(line), {side: track[start:end] for side, track in sides.items()})


def card(root: Path, seed: int, counts: dict[str, int], heldout_voices: str = "heldout",
         heldout_prompts: str = "heldout") -> str:
    crossed = [what for what, pool in (("voices", heldout_voices), ("prompts", heldout_prompts)) if pool == "train"]
    lines = ["# Synthetic full-duplex conversations", "",
             f"Generated by `antiphon data --out {root.name} "
             + " ".join(f"--{split} {count}" for split, count in counts.items()) + f" --seed {seed}"
             + "".join(f" --heldout-{what} train" for what in crossed) + "`.", "",
             *([f"For a diagnosis, the held-out split here takes its user {' and '.join(crossed)} from "
                "training's pools (without training's resampling, vowel shifts, formant shapes, fillers and "
                "Opus).", ""]
               if crossed else []),
             "Two 24 kHz mono tracks per conversation (user, agent), every word and phoneme of both sides "
             "time-aligned (espeak-ng's word marks and phoneme events). The agent speaks with one voice "
             "(espeak-ng en-us+f3); users with espeak-ng accents x voice variants at random rate, pitch and "
             f"range (in training also resampled by {VOCAL_TRACT_WARP[0]:g}-{VOCAL_TRACT_WARP[1]:g}, which moves "
             "pitch and formants together as a shorter or longer vocal tract would; "
             f"{VOWEL_SHIFT_SHARE:.0%} of them also say {VOWELS_SHIFTED[0]}-{VOWELS_SHIFTED[1]} of their vowels as "
             "a neighbouring vowel, as in an accent no voice has; "
             f"{FORMANT_SHAPE_SHARE:.0%} speak with their variant's formants {', '.join(SHAPED_FORMANTS)} each "
             f"moved on its own, frequency by {FORMANT_SHAPE['frequency'][0]:g}-{FORMANT_SHAPE['frequency'][1]:g}, "
             f"height by {FORMANT_SHAPE['height'][0]:g}-{FORMANT_SHAPE['height'][1]:g} and width by "
             f"{FORMANT_SHAPE['width'][0]:g}-{FORMANT_SHAPE['width'][1]:g}, a voice no variant has), their track "
             "augmented with a synthetic room "
             "(half the conversations), noise at 10-40 dB "
             f"SNR (70 %) and a level of -12 to +3 dB. Agent replies start {REPLY_GAP[0]:g}-{REPLY_GAP[1]:g} s "
             f"after the user's last word; an interrupted agent falls silent {YIELD_DELAY[0]:g}-{YIELD_DELAY[1]:g} "
             "s after the interruption starts. The held-out "
             "split uses user voices (one whole accent and six variants) and prompts that training never "
             "hears: each fact (a sum, a spelling, a phrase, a count) comes with several wordings, at most one "
             "of which is held out, and colour questions hold out whole (thing, colour) pairs whose answer "
             f"follows from the other questions about the thing. In training, {FILLER_SHARE:.0%} of the prompts "
             f"start with a filler ({', '.join(FILLERS)}), and {OPUS_SHARE:.0%} of the users' tracks come "
             "through Opus as a streaming client sends them (held-out tracks are recordings, which a client "
             "puts through Opus when served). Every choice follows from the seed, and "
             "so does the sound: each conversation is synthesised from espeak-ng's state as initialised, so "
             "a regenerated dataset matches bit for bit.", "",
             "| split | conversations | hours | user voices | " + " | ".join(_TASK_COLUMNS) + " |",
             "|---|---|---|---|" + "---|" * len(_TASK_COLUMNS)]
    for split in counts:
        tasks: Counter = Counter()
        voices: set[str] = set()
        seconds = 0.0
        conversations = 0
        for jsonl in sorted((root / split).glob("shard-*.jsonl")):
            for line in jsonl.read_text().splitlines():
                meta = json.loads(line)
                conversations += 1
                seconds += meta["duration"]
                voices.add(meta["user_voice"])
                tasks.update(turn["task"] for turn in meta["turns"])
        lines.append(f"| {split} | {conversations} | {seconds / 3600:.2f} | {len(voices)} | "
                     + " | ".join(str(tasks[name]) for name in _TASK_COLUMNS) + " |")
    lines += ["", "Task columns count exchanges (a conversation holds one to three)."]
    return "\n".join(lines) + "\n"


_TASK_COLUMNS = ["greeting", "repeat", "spell", "arithmetic", "counting", "yes_no_colour", "yes_no_number",
                 "interruption"]
