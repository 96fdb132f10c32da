"""The LM's view of the synthetic conversations: one text stream and 16 audio codebooks per 80 ms frame.

Row 0 is the agent's inner monologue with Moshi's alignment: each word's sentencepiece tokens from the
frame where the word starts in the agent's audio, the end-of-padding token just before a word that
follows silence, the padding token elsewhere. Rows 1-8 are the agent's codec tokens, rows 9-16 the
user's, from the small codec run over each whole track (its causal encoder gives the tokens a streaming
encoder gives), one frame ahead of the other rows: moshi's LMGen reads the user's frame t in the same step
as the model's own frame t - 1 (the microphone frame that just arrived), so training pairs them alike.

Row 17 is not a stream of the LM: the user's words as the agent has heard them, each word's tokens from
just after the frame where it ends, the target of a training-only listening head (`antiphon train lm`).

A split is stored as `tokens-SPLIT.npz`: `codes` (int16, 18 x all frames end to end), `offsets`. More
training conversations can arrive while a run trains, as `tokens-train-K.npz` (`antiphon train lm-data`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sentencepiece
import torch
from moshi.models.compression import MimiModel

from ..data.dataset import read_split

FRAME_RATE = 12.5
STREAMS = 17  # rows the LM reads: text, the agent's 8 codebooks, the user's 8
AGENT_AUDIO_ROWS = slice(1, 9)
USER_AUDIO_ROWS = slice(9, STREAMS)
HEARD_ROW = 17
# Frames between the one holding a user word's end and its transcript: the model has then read the
# word's audio in full plus 80-160 ms (the user row runs one frame ahead).
HEARD_DELAY_FRAMES = 1
SAMPLES_PER_FRAME = 1920
# The agent is silent this long before each reply (while the user speaks; 0.64 s), never within one.
REPLY_SILENCE_FRAMES = 8
# Moshi's special text ids: 0 ends a stretch of padding (and is sentencepiece's unknown piece), 3 pads.
END_OF_PADDING = 0
PADDING = 3


def is_word(tokens):
    """Which monologue tokens are words (neither padding nor its end), for numpy arrays and tensors."""
    return (tokens != PADDING) & (tokens != END_OF_PADDING)


def reply_starts(text):
    """Which frames of monologue rows (..., frames) start a reply: an onset after at least
    REPLY_SILENCE_FRAMES frames without a word (the user's turn), not one after a pause within a reply
    (between spelt letters, after "no,"). Numpy arrays and tensors alike."""
    starts = word_onsets(text)
    words = is_word(text)
    for lag in range(1, REPLY_SILENCE_FRAMES + 1):
        starts[..., lag:] &= ~words[..., :-lag]
    return starts


def word_onsets(text):
    """Which frames of monologue rows (..., frames) start a stretch of speech: a word right after the
    end-of-padding token, as each reply's first word is aligned. Numpy arrays and tensors alike."""
    onsets = is_word(text)
    onsets[..., 0] = False
    onsets[..., 1:] &= text[..., :-1] == END_OF_PADDING
    return onsets


def corpus_sentences(root: Path, split: str = "train") -> list[str]:
    """Every sentence of both sides, interruptions included, as the alignment spells it (lower case, no
    punctuation)."""
    sentences = []
    for jsonl in sorted((root / split).glob("shard-*.jsonl")):
        for line in jsonl.read_text().splitlines():
            for turn in json.loads(line)["turns"]:
                sentences += [_plain(turn[side]) for side in ("user", "agent", "interrupt") if side in turn]
    return sentences


def _plain(text: str) -> str:
    return " ".join(word.strip(",.?!") for word in text.split())


def train_tokenizer(root: Path, model_prefix: Path, max_vocab: int) -> sentencepiece.SentencePieceProcessor:
    """A small unigram model over the corpus; ids 0-3 follow Moshi's tokenizer (unknown/end of padding,
    begin, end, padding), so the LM's padding ids mean what moshi's LMGen expects."""
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_sentences(root)), model_prefix=str(model_prefix), vocab_size=max_vocab,
        hard_vocab_limit=False, model_type="unigram", character_coverage=1.0, unk_id=END_OF_PADDING,
        bos_id=1, eos_id=2, pad_id=PADDING, minloglevel=2, num_threads=1)
    return sentencepiece.SentencePieceProcessor(model_file=f"{model_prefix}.model")


def align_text(words: list[dict], num_frames: int, tokenizer: sentencepiece.SentencePieceProcessor) -> np.ndarray:
    """The monologue row for one conversation: word tokens from the frame of each word's start, the
    end-of-padding token just before a word that follows silence."""
    return _lay_out(words, num_frames, tokenizer, lambda word: int(word["start"] * FRAME_RATE),
                    end_of_padding=True)


def align_heard_text(words: list[dict], num_frames: int,
                     tokenizer: sentencepiece.SentencePieceProcessor) -> np.ndarray:
    """The user's words as heard: each word's tokens from HEARD_DELAY_FRAMES after the frame where it
    ends, padding elsewhere."""
    return _lay_out(words, num_frames, tokenizer,
                    lambda word: int(np.ceil(word["end"] * FRAME_RATE)) + HEARD_DELAY_FRAMES, end_of_padding=False)


def _lay_out(words: list[dict], num_frames: int, tokenizer: sentencepiece.SentencePieceProcessor,
             first_frame: Callable[[dict], int], end_of_padding: bool) -> np.ndarray:
    """A row of `num_frames`: each word's tokens on consecutive frames from `first_frame(word)` (or the
    first frame after the previous word's, if later), padding elsewhere."""
    row = np.full(num_frames, PADDING, dtype=np.int64)
    next_free = 0
    for word in words:
        frame = max(first_frame(word), next_free)
        if frame >= num_frames:
            break
        if end_of_padding and frame > 0 and row[frame - 1] == PADDING:
            row[frame - 1] = END_OF_PADDING
        for token in tokenizer.encode(word["text"]):
            if frame >= num_frames:
                break
            row[frame] = token
            frame += 1
        next_free = frame
    return row


@torch.no_grad()
def encode_tracks(mimi: MimiModel, tracks: list[np.ndarray], device: torch.device,
                  max_batch_seconds: float | None = None) -> list[np.ndarray]:
    """Codec tokens (8 x frames) of each int16 track, in batches of similar lengths (by default 40
    minutes of audio a batch on a GPU, 2 minutes on a CPU, whose activations live in host memory)."""
    if max_batch_seconds is None:
        max_batch_seconds = 2400.0 if device.type == "cuda" else 120.0
    frames = [-(-len(track) // SAMPLES_PER_FRAME) for track in tracks]
    order = sorted(range(len(tracks)), key=lambda i: frames[i])
    result: list[np.ndarray] = [np.empty(0)] * len(tracks)
    start = 0
    while start < len(order):
        longest = frames[order[min(len(order) - 1, start)]]
        count = max(1, int(max_batch_seconds * FRAME_RATE // max(longest, 1)))
        group = order[start:start + count]
        width = frames[group[-1]] * SAMPLES_PER_FRAME
        batch = np.zeros((len(group), 1, width), dtype=np.float32)
        for row, index in enumerate(group):
            batch[row, 0, :len(tracks[index])] = tracks[index].astype(np.float32) / 32767
        codes = mimi.encode(torch.from_numpy(batch).to(device)).cpu().numpy()
        for row, index in enumerate(group):
            result[index] = codes[row, :, :frames[index]].astype(np.int16)
        start += len(group)
    return result


def stream_rows(text: np.ndarray, agent: np.ndarray, user: np.ndarray) -> np.ndarray:
    """The rows the LM reads for one conversation ([STREAMS, frames] int16): its monologue row, the
    agent's codec tokens, and the user's one frame ahead."""
    user_ahead = np.concatenate([user[:, 1:], user[:, -1:]], axis=1)
    return np.concatenate([text[None].astype(np.int16), agent, user_ahead])


def tokenize_split(mimi: MimiModel, tokenizer: sentencepiece.SentencePieceProcessor, root: Path, split: str,
                   path: Path, device: torch.device) -> Path:
    records = list(read_split(root, split))
    agents = encode_tracks(mimi, [r.tracks["agent"] for r in records], device)
    users = encode_tracks(mimi, [r.tracks["user"] for r in records], device)
    streams = []
    for record, agent, user in zip(records, agents, users):
        text = align_text(record.meta["agent_words"], agent.shape[1], tokenizer)
        heard = align_heard_text(record.meta["user_words"], agent.shape[1], tokenizer)
        streams.append(np.concatenate([stream_rows(text, agent, user), heard[None].astype(np.int16)]))
    offsets = np.concatenate([[0], np.cumsum([s.shape[1] for s in streams])]).astype(np.int64)
    partial = path.with_name(path.stem + ".partial.npz")  # a reader never sees half a file
    np.savez(partial, codes=np.concatenate(streams, axis=1), offsets=offsets,
             ids=np.array([r.meta["id"] for r in records]))
    partial.rename(path)
    return path


class TokenSet:
    """Conversations as [18, frames] int64 arrays, from one token file or every file matching a pattern
    (`refresh` adds the files that appeared since)."""

    def __init__(self, folder: Path, pattern: str) -> None:
        self.folder, self.pattern = folder, pattern
        self.conversations: list[np.ndarray] = []
        self.files: set[str] = set()
        self.refresh()
        if not self.conversations:
            raise FileNotFoundError(f"no token file matches {folder / pattern}")

    def refresh(self) -> int:
        """Load new token files; returns how many conversations they added."""
        added = 0
        for path in sorted(self.folder.glob(self.pattern)):
            if path.name in self.files or path.name.endswith(".partial.npz"):
                continue
            arrays = np.load(path)
            codes, offsets = arrays["codes"].astype(np.int64), arrays["offsets"]
            self.conversations += [codes[:, offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            self.files.add(path.name)
            added += len(offsets) - 1
        return added

    def __len__(self) -> int:
        return len(self.conversations)

    def batch(self, indices: list[int], max_frames: int, pad: int, fixed_length: bool = False) -> torch.Tensor:
        """The conversations from their start, cut at `max_frames`, padded with `pad` (masked in the loss)
        to the longest of them, or with `fixed_length` to `max_frames`."""
        length = max_frames if fixed_length else min(max_frames, max(self.conversations[i].shape[1] for i in indices))
        batch = np.full((len(indices), self.conversations[indices[0]].shape[0], length), pad, dtype=np.int64)
        for row, index in enumerate(indices):
            codes = self.conversations[index][:, :length]
            batch[row, :, :codes.shape[1]] = codes
        return torch.from_numpy(batch)
