"""moshi's own one-session streaming loop, as its server runs it: the reference that batched serving
must match token for token under greedy decoding."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from moshi.models.lm import LMGen

from .loader import LoadedModel

FRAME_SIZE = 1920


@dataclass
class Trace:
    text: list[int]
    audio: list[np.ndarray]
    pcm: list[np.ndarray]
    user: list[np.ndarray] = field(default_factory=list)  # the user's audio tokens, one entry a frame


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    usable = len(pcm) // FRAME_SIZE * FRAME_SIZE
    return list(pcm[:usable].reshape(-1, FRAME_SIZE))


@torch.no_grad()
def reference_run(model: LoadedModel, frames: list[np.ndarray], batch: int = 1) -> Trace:
    """Greedy single-session decoding with moshi's LMGen and MimiModel.

    With `batch` > 1 the session's frames fill every row of a batch of that size: the same computation,
    with the kernels a GPU picks for that batch size (which round differently from batch 1's); row 0's
    tokens are the reference for a session served in a batch of that size."""
    lm_gen = LMGen(model.lm, use_sampling=False)
    device = next(model.lm.parameters()).device
    trace = Trace([], [], [])
    with model.mimi.streaming(batch), lm_gen.streaming(batch):
        for index, frame in enumerate(frames):
            codes = model.mimi.encode(torch.from_numpy(frame)[None, None].repeat(batch, 1, 1).to(device))
            trace.user.append(codes[0, :, 0].cpu().numpy())
            if index == 0:
                model.mimi.reset_streaming()  # as moshi's server does after the first frame
            tokens = lm_gen.step(codes)
            if tokens is None:
                continue
            trace.text.append(int(tokens[0, 0, 0]))
            trace.audio.append(tokens[0, 1:, 0].cpu().numpy())
            trace.pcm.append(model.mimi.decode(tokens[:, 1:])[0, 0].float().cpu().numpy())
    return trace
