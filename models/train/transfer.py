"""Moving safetensors files through a channel that takes files of at most 16 MB: split one into parts
and join them again, optionally in 8 bits (per-row absmax int8 with float16 scales) to halve what travels.

    python -m antiphon.models.train.transfer split FILE PREFIX [--int8]
    python -m antiphon.models.train.transfer join PREFIX FILE
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PART_BYTES = 15 * 10**6
_SCALE = ".int8_scale"


def _quantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    packed = {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            rows = tensor.float().flatten(1)
            scale = rows.abs().amax(1).clamp_min(1e-12) / 127
            packed[name] = torch.round(rows / scale[:, None]).to(torch.int8).view(tensor.shape)
            packed[name + _SCALE] = scale.to(torch.float16)
        else:
            packed[name] = tensor
    return packed


def _dequantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    plain = {}
    for name, tensor in state.items():
        if name.endswith(_SCALE):
            continue
        scale = state.get(name + _SCALE)
        if scale is not None:
            tensor = (tensor.float().flatten(1) * scale.float()[:, None]).view(tensor.shape).to(torch.float16)
        plain[name] = tensor
    return plain


def split(path: Path, prefix: str, int8: bool = False) -> list[Path]:
    state = load_file(str(path))
    if int8:
        state = _quantize(state)
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if parts[-1] and size + nbytes > PART_BYTES:
            parts.append({})
            size = 0
        parts[-1][name] = state[name]
        size += nbytes
    paths = [Path(f"{prefix}-{index}.safetensors") for index in range(len(parts))]
    for part, part_path in zip(parts, paths):
        save_file(part, str(part_path))
    return paths


def join(prefix: str, path: Path) -> None:
    state: dict[str, torch.Tensor] = {}
    for part in sorted(Path(prefix).parent.glob(Path(prefix).name + "-*.safetensors")):
        state.update(load_file(str(part)))
    save_file(_dequantize(state), str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    split_command = commands.add_parser("split")
    split_command.add_argument("file", type=Path)
    split_command.add_argument("prefix")
    split_command.add_argument("--int8", action="store_true")
    join_command = commands.add_parser("join")
    join_command.add_argument("prefix")
    join_command.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.command == "split":
        split(args.file, args.prefix, args.int8)
    else:
        join(args.prefix, args.file)


if __name__ == "__main__":
    main()
