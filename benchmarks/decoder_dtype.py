"""What running the codec in bfloat16 does to its tokens and audio, against float32, on real speech.

For the shipped codec (trained) and Moshi's Mimi configuration (random weights, calibrated codebooks):
the share of each codebook's tokens a bfloat16 encoder and quantizer give unchanged, and the agreement
(SNR) of the decoded audio with float32's, with the whole codec in bfloat16 and with only its decoder
(`--decoder-dtype bfloat16`: the same tokens, decoded in bfloat16). Prints a table and writes OUT.md.

    python benchmarks/decoder_dtype.py [--seconds 10] [--out benchmarks/results/decoder_dtype]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel

from antiphon.models.codec_precision import run_decoder_in
from antiphon.models.configs import MOSHI_7B_MIMI
from antiphon.models.loader import WEIGHTS_DIR, load_codec
from antiphon.models.random_init import calibrate_random_codebooks
from antiphon.models.train.audio_losses import snr_db
from antiphon.server.bench import speech_frames
from report import write_report


@torch.no_grad()
def stream(mimi: MimiModel, frames: torch.Tensor, dtype: torch.dtype,
           codes: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """(codes, audio) of streaming `frames` [frames, samples] through `mimi` frame by frame, or of
    decoding `codes` when given."""
    if codes is None:
        with mimi.streaming(1):
            codes = torch.cat([mimi.encode(frame.view(1, 1, -1).to(dtype)) for frame in frames], dim=-1)
    with mimi.streaming(1):
        audio = torch.cat([mimi.decode(codes[..., i:i + 1]).float() for i in range(codes.shape[-1])], dim=-1)
    return codes, audio.numpy().ravel()


def moshi_mimi() -> MimiModel:
    torch.manual_seed(0)
    mimi = loaders.get_mimi(None, MOSHI_7B_MIMI, device="cpu", num_codebooks=8)
    calibrate_random_codebooks(mimi, torch.Generator().manual_seed(0))
    return mimi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decoder_dtype"))
    args = parser.parse_args()
    codecs = {"shipped codec (antiphon-small, trained)": lambda: load_codec(WEIGHTS_DIR / "antiphon-small"),
              "Moshi's Mimi configuration (random weights)": moshi_mimi}
    lines = [f"{args.seconds:g} s of espeak-ng speech, streamed frame by frame on the CPU; float32 is the "
             "reference.", "",
             "| codec | tokens unchanged by a bfloat16 encoder, codebooks 1-8 | audio SNR, whole codec in "
             "bfloat16 | audio SNR, decoder alone in bfloat16 (same tokens) |", "|---|---|---|---|"]
    for name, build in codecs.items():
        full = build().eval()
        frames = torch.from_numpy(speech_frames(args.seconds, int(full.frame_size)))
        codes, audio = stream(full, frames, torch.float32)
        whole = build().eval().to(torch.bfloat16)
        half_codes, half_audio = stream(whole, frames, torch.bfloat16)
        decoder_only = build().eval()
        run_decoder_in(decoder_only, torch.bfloat16)
        _, decoded = stream(decoder_only, frames, torch.float32, codes)
        unchanged = (codes == half_codes).float().mean(dim=(0, 2))
        lines.append(f"| {name} | {' / '.join(f'{100 * share:.0f} %' for share in unchanged.tolist())} | "
                     f"{snr_db(audio, half_audio):.1f} dB | {snr_db(audio, decoded):.1f} dB |")
    write_report(args.out, "The codec in bfloat16", "\n".join(lines))


if __name__ == "__main__":
    main()
