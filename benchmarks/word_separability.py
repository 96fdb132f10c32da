"""Can the codec's tokens tell the spelling task's words apart in a voice never heard in training?

Each of the spelling task's 48 words is said alone by training voices (the references) and by held-out
voices (the queries), as espeak-ng says them (no resampling or vowel shifts). A query is matched to its
nearest reference by dynamic time warping, in each of three representations; the share of queries whose
nearest reference is the same word says how well that representation keeps the words apart across voices:

- the sound itself: log-mel frames, 20 ms apart;
- the shipped codec's latent: its eight codebooks' quantized vector per 80 ms frame (cosine distance);
- the codec's first (semantic) codebook alone: its token per frame (0 where equal, 1 where not).

Prints a table and writes OUT.md:
    python benchmarks/word_separability.py [--voices 8] [--out benchmarks/results/word_separability]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from antiphon.models.data.conversations import SAMPLE_RATE, Generator, voices
from antiphon.models.data.tasks import SPELL_WORDS
from antiphon.models.loader import WEIGHTS_DIR, load_codec
from antiphon.models.train.audio_losses import MultiScaleMel
from report import write_report

RESULTS = Path(__file__).parent / "results"


def said(generator: Generator, word: str, voice: str) -> np.ndarray:
    pcm = generator.utterance(word, voice=voice, rate=160, pitch=50, pitch_range=50).pcm
    return np.pad(pcm, (0, -len(pcm) % 1920))


@torch.no_grad()
def representations(mimi, mel: MultiScaleMel, pcm: np.ndarray) -> dict[str, np.ndarray]:
    """[frames, features] per representation (tokens: [frames, 1] of ids)."""
    audio = torch.from_numpy(pcm)[None, None]
    codes = mimi.encode(audio)
    latent = mimi.decode_latent(codes)[0].T.numpy()
    log_mel = torch.log(mel.mel(audio, 1024)[0] + 1e-5).T.numpy()[::2]  # 1024-point STFT, hop 10 ms -> 20 ms
    return {"log-mel (20 ms)": log_mel, "codec latent, 8 codebooks (80 ms)": latent,
            "semantic codebook tokens (80 ms)": codes[0, :1].T.numpy().astype(np.float32)}


def frame_costs(name: str, query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    if name.startswith("semantic"):
        return (query[:, None, 0] != reference[None, :, 0]).astype(np.float64)
    if name.startswith("codec"):
        q = query / (np.linalg.norm(query, axis=1, keepdims=True) + 1e-9)
        r = reference / (np.linalg.norm(reference, axis=1, keepdims=True) + 1e-9)
        return 1 - q @ r.T
    return np.abs(query[:, None, :] - reference[None, :, :]).mean(-1)


def dtw(costs: np.ndarray) -> float:
    """The cheapest monotonic alignment's mean cost (steps right, down or diagonal)."""
    n, m = costs.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            total[i, j] = costs[i - 1, j - 1] + min(total[i - 1, j], total[i, j - 1], total[i - 1, j - 1])
    return float(total[n, m] / (n + m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", type=int, default=8, help="voices of each side")
    parser.add_argument("--codec", type=Path, default=WEIGHTS_DIR / "antiphon-small")
    parser.add_argument("--out", type=Path, default=RESULTS / "word_separability")
    args = parser.parse_args()
    rng = random.Random(0)
    sides = {side: rng.sample(voices(side), args.voices) for side in ("train", "heldout")}
    generator, mimi = Generator(), load_codec(args.codec).eval()
    mel = MultiScaleMel(SAMPLE_RATE, scales=(1024,), n_mels=80)
    items = {side: [(word, representations(mimi, mel, said(generator, word, voice)))
                    for voice in chosen for word in SPELL_WORDS] for side, chosen in sides.items()}
    names = list(items["train"][0][1])
    rows, confusions = [], {}
    for name in names:
        right, mistaken = 0, Counter()
        for word, features in items["heldout"]:
            scores = [dtw(frame_costs(name, features[name], other[name])) for _, other in items["train"]]
            nearest = items["train"][int(np.argmin(scores))][0]
            right += nearest == word
            if nearest != word:
                mistaken[(word, nearest)] += 1
        rows.append(f"| {name} | {right} of {len(items['heldout'])} ({right / len(items['heldout']):.1%}) |")
        confusions[name] = mistaken.most_common(8)
    lines = [f"The spelling task's {len(SPELL_WORDS)} words, each said alone by {args.voices} held-out voices "
             f"(queries) and {args.voices} training voices (references), espeak-ng at rate 160, pitch 50; "
             f"codec: `{args.codec.name}`. Nearest reference by dynamic time warping.", "",
             "| representation | queries whose nearest reference is the same word |", "|---|---|", *rows, "",
             "Most frequent confusions (said → nearest):", ""]
    lines += [f"- {name}: " + ", ".join(f"{said_word} → {nearest} ({count})" for (said_word, nearest), count in pairs)
              for name, pairs in confusions.items()]
    write_report(args.out, "How far the codec's tokens keep the spelling words apart", "\n".join(lines))


if __name__ == "__main__":
    main()
