"""What teacher forcing hides: the LM decoding on its own.

Teacher-forced accuracy feeds the model the recorded monologue; served, it reads its own. This probe
runs moshi's LMGen greedily over held-out conversations (their user tokens as input, everything else
the model's own) and counts the onsets whose first word comes out right, within two frames of where
the recording starts it. Run 1 of the default LM scored 0.62 teacher-forced on such words but about a
quarter free-running, which only a served evaluation showed.

Every stretch of speech is an onset, so a reply that went astray counts again at each pause in it
(between spelt letters, after "no,"); reply starts alone, where the answer is decided, tell hearing
apart from such knock-on errors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from moshi.models.lm import LMGen, LMModel
from moshi.utils.compile import no_cuda_graph

from .lm_data import PADDING, USER_AUDIO_ROWS, TokenSet, is_word, reply_starts, word_onsets

WINDOW = 2  # frames either side of the recorded onset


@torch.no_grad()
def free_running_accuracies(lm: LMModel, token_set: TokenSet, conversations: int) -> dict[str, float]:
    """Greedy decoding: the share of onsets (`free_onset_accuracy`: every stretch of speech, so a reply
    that went astray counts again at each later pause in it) and of reply starts
    (`free_reply_start_accuracy`: each reply's first word, where the answer is decided) whose first
    generated word equals the recording's."""
    chosen = token_set.conversations[:conversations]
    frames = max(c.shape[1] for c in chosen)
    device = next(lm.parameters()).device
    # Step t reads user row t - 1, which holds the microphone frame that arrived by step t (lm_data);
    # step 0 reads none (moshi's initial token).
    user = np.zeros((len(chosen), 8, frames), dtype=np.int64)
    for row, codes in enumerate(chosen):
        user[row, :, 1:codes.shape[1] + 1] = codes[USER_AUDIO_ROWS, :frames - 1]
        user[row, :, codes.shape[1] + 1:] = codes[USER_AUDIO_ROWS, -1:]  # hold the last frame past the end
    lm_gen = LMGen(lm, use_sampling=False)
    text = np.full((len(chosen), frames), PADDING)
    # In the weights' own dtype: moshi's streaming KV cache takes that dtype, which autocast would break.
    with no_cuda_graph(), lm_gen.streaming(len(chosen)):
        for t in range(frames):
            out = lm_gen.step(torch.from_numpy(user[:, :, t:t + 1]).to(device))
            if out is not None and t >= 1:
                text[:, t - 1] = out[:, 0, 0].cpu().numpy()  # step t returns position t - 1
    return {"free_onset_accuracy": _share_right(text, chosen, word_onsets),
            "free_reply_start_accuracy": _share_right(text, chosen, reply_starts)}


def _share_right(text: np.ndarray, chosen: list[np.ndarray], frames_of: Callable) -> float:
    """The share of the frames `frames_of` picks in the recordings' monologues whose word the generated
    `text` says first within WINDOW frames."""
    right = total = 0
    for row, codes in enumerate(chosen):
        for frame in np.flatnonzero(frames_of(codes[0])):
            window = text[row, max(0, frame - WINDOW):frame + WINDOW + 1]
            words = window[is_word(window)]
            total += 1
            right += bool(len(words)) and words[0] == codes[0, frame]
    return float(right / max(total, 1))
