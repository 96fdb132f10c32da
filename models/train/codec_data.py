"""Training crops for the codec: speech from either side of the synthetic conversations, with the
phoneme heard at each 80 ms frame (the target that puts phonetic content in the first codebook)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.dataset import read_split

SAMPLE_RATE = 24000
FRAME = 1920
SILENCE = "_"


@dataclass
class Track:
    pcm: np.ndarray        # int16
    labels: np.ndarray     # phoneme id per 80 ms frame


def phoneme_labels(meta: dict, side: str, frames: int, inventory: dict[str, int]) -> np.ndarray:
    """The phoneme whose event last started before each frame's centre, inside a word; else silence."""
    labels = np.full(frames, inventory[SILENCE], dtype=np.int64)
    centres = (np.arange(frames) + 0.5) * FRAME / SAMPLE_RATE
    phonemes = meta[f"{side}_phonemes"]
    if not phonemes:
        return labels
    starts = np.array([at for _, at in phonemes])
    ids = np.array([inventory.get(name, inventory[SILENCE]) for name, _ in phonemes])
    voiced = np.zeros(frames, dtype=bool)
    for word in meta[f"{side}_words"]:
        voiced |= (centres >= word["start"]) & (centres < word["end"])
    latest = np.searchsorted(starts, centres, side="right") - 1
    has = voiced & (latest >= 0)
    labels[has] = ids[latest[has]]
    return labels


def build_inventory(root: Path) -> dict[str, int]:
    names = set()
    for jsonl in sorted((root / "train").glob("shard-*.jsonl")):
        for line in jsonl.read_text().splitlines():
            meta = json.loads(line)
            names.update(name for side in ("user", "agent") for name, _ in meta[f"{side}_phonemes"])
    return {name: index for index, name in enumerate([SILENCE, *sorted(names - {SILENCE})])}


def load_tracks(root: Path, split: str, inventory: dict[str, int]) -> list[Track]:
    tracks = []
    for record in read_split(root, split):
        for side, pcm in record.tracks.items():
            frames = len(pcm) // FRAME
            tracks.append(Track(pcm[:frames * FRAME], phoneme_labels(record.meta, side, frames, inventory)))
    return tracks


class CropSampler:
    """Random `frames`-frame crops that hold speech (a crop of silence teaches the codec little)."""

    def __init__(self, tracks: list[Track], frames: int, seed: int = 0) -> None:
        self.tracks = [t for t in tracks if len(t.labels) > frames]
        self.frames = frames
        self.rng = np.random.default_rng(seed)
        self.silence = 0

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        audio = np.zeros((size, self.frames * FRAME), dtype=np.float32)
        labels = np.zeros((size, self.frames), dtype=np.int64)
        for row in range(size):
            for _ in range(10):
                track = self.tracks[self.rng.integers(len(self.tracks))]
                start = self.rng.integers(len(track.labels) - self.frames)
                crop = track.labels[start:start + self.frames]
                if (crop != self.silence).mean() > 0.3:
                    break
            audio[row] = track.pcm[start * FRAME:(start + self.frames) * FRAME] / 32767
            labels[row] = crop
        return audio, labels
