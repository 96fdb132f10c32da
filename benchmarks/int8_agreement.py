"""`--int8-weights` against the model's own weights: how often the int8 LM picks the token the model
picks, on the same speech. Two measures, each per stream (text, the first audio codebook, the others):

- teacher-forced: both LMs read the same tokens (the model's own greedy run over the speech) and each
  position's most likely token is compared; no difference carries over to the next position;
- free-running: both decode greedily with moshi's one-session loop, each from its own past tokens, and
  the runs are compared token by token, with the first step where they part.

Prints a table and writes OUT.md:
    python benchmarks/int8_agreement.py --model /path/to/model [--device cuda] [--seconds 30]
    python benchmarks/int8_agreement.py --model moshi-7b --random-weights --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from antiphon.models.loader import LoadedModel, load_model
from antiphon.models.reference import Trace, reference_run
from antiphon.server.bench import speech_frames
from report import write_report

RESULTS = Path(__file__).parent / "results"


@torch.no_grad()
@torch.no_grad()
def teacher_forced_choices(model: LoadedModel, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each position's most likely token, text [T] and audio [codebooks, T], where valid (-1 elsewhere)."""
    out = model.lm(codes[None])
    text = torch.where(out.text_mask[0, 0], out.text_logits[0, 0].argmax(-1), -1)
    audio = torch.where(out.mask[0], out.logits[0].argmax(-1), -1)
    return text, audio


def shares_equal(a: torch.Tensor, b: torch.Tensor) -> float:
    valid = (a >= 0) & (b >= 0)
    return float((a[valid] == b[valid]).float().mean()) if valid.any() else float("nan")


def free_running(got: Trace, want: Trace) -> dict:
    steps = min(len(got.text), len(want.text))
    text = np.array([got.text[i] == want.text[i] for i in range(steps)])
    audio = np.array([got.audio[i] == want.audio[i] for i in range(steps)])  # [steps, codebooks]
    parted = [i for i in range(steps) if not (text[i] and audio[i].all())]
    return {"steps": steps, "text": float(text.mean()), "semantic": float(audio[:, 0].mean()),
            "acoustic": float(audio[:, 1:].mean()), "first_difference": parted[0] if parted else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=30.0, help="speech the LMs hear")
    parser.add_argument("--out", type=Path, default=RESULTS / "int8_agreement")
    args = parser.parse_args()
    device = torch.device(args.device)
    own = load_model(args.model, device=device, random_weights=args.random_weights)
    int8 = load_model(args.model, device=device, random_weights=args.random_weights, int8_weights=True)
    frames = speech_frames(args.seconds, int(own.mimi.frame_size))
    want, got = reference_run(own, list(frames)), reference_run(int8, list(frames))
    steps = len(want.text)
    agent = torch.tensor(np.stack(want.audio, axis=1), device=device)
    user = torch.tensor(np.stack(want.user[:steps], axis=1), device=device)
    codes = torch.cat([torch.tensor(want.text, device=device)[None], agent, user])
    own_text, own_audio = teacher_forced_choices(own, codes)
    int8_text, int8_audio = teacher_forced_choices(int8, codes)
    agent_books = agent.shape[0]
    forced = {"text": shares_equal(own_text, int8_text),
              "semantic": shares_equal(own_audio[0], int8_audio[0]),
              "acoustic": shares_equal(own_audio[1:agent_books], int8_audio[1:agent_books])}
    running = free_running(got, want)
    dtype = str(next(own.lm.parameters()).dtype).removeprefix("torch.")
    weights = {name: sum(t.numel() * t.element_size() for t in [*m.lm.parameters(), *m.lm.buffers()]) / 2**30
               for name, m in (("own", own), ("int8", int8))}
    first = "none" if running["first_difference"] is None else f"step {running['first_difference']}"
    lines = [f"Model {own.name}{' (random weights)' if own.untrained else ''}, LM in {dtype}, on "
             f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}; "
             f"{steps} steps ({steps * 0.08:.1f} s) of espeak-ng speech. LM weights and buffers: "
             f"{weights['own']:.2f} GiB, {weights['int8']:.2f} GiB with int8 linear weights.", "",
             "| measure | text | first audio codebook | other agent codebooks | first step that differs |",
             "|---|---|---|---|---|",
             f"| teacher-forced: most likely token equal | {forced['text']:.1%} | {forced['semantic']:.1%} | "
             f"{forced['acoustic']:.1%} | - |",
             f"| free-running greedy: token equal | {running['text']:.1%} | {running['semantic']:.1%} | "
             f"{running['acoustic']:.1%} | {first} |"]
    write_report(args.out, "int8 LM weights against the model's own", "\n".join(lines))


if __name__ == "__main__":
    main()
