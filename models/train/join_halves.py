"""Split a safetensors file in two (by tensor name) and join the halves again: the device tool brings
back files of at most 16 MB.   python -m antiphon.models.train.join_halves split FILE PREFIX
                               python -m antiphon.models.train.join_halves join PREFIX FILE"""

from __future__ import annotations

import sys

from safetensors.torch import load_file, save_file


def split(path: str, prefix: str) -> None:
    state = load_file(path)
    keys = sorted(state)
    save_file({k: state[k] for k in keys[: len(keys) // 2]}, f"{prefix}-a.safetensors")
    save_file({k: state[k] for k in keys[len(keys) // 2:]}, f"{prefix}-b.safetensors")


def join(prefix: str, path: str) -> None:
    save_file({**load_file(f"{prefix}-a.safetensors"), **load_file(f"{prefix}-b.safetensors")}, path)


if __name__ == "__main__":
    {"split": split, "join": join}[sys.argv[1]](sys.argv[2], sys.argv[3])
