"""Keeping moshi's streaming state at fixed addresses, for CUDA graphs.

A graph replays on the memory it captured. State that the streaming modules update in place stays
consistent, but an attribute rebound to a new tensor during capture (LMGen does `state.offsets =
torch.where(...)`) would leave the replays reading the old tensor forever. `StatePinning` finds such
attributes and, inside the captured work, copies the new value back into the tensor that was there
before, so every replay reads and writes the same memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from moshi.modules.streaming import StreamingModule
from moshi.utils.compile import CUDAGraphed

# Attributes of streaming states that hold callables or graphs rather than state.
_SKIPPED = (torch.nn.Module, CUDAGraphed)


def state_tensors(modules: list[StreamingModule]) -> list[tuple[Any, str, torch.Tensor]]:
    """Every tensor attribute of the modules' streaming states, including those of the plain objects a
    state holds (a KV cache): (owner, attribute name, tensor)."""
    found: list[tuple[Any, str, torch.Tensor]] = []
    seen: set[int] = set()

    def visit(owner: Any) -> None:
        if id(owner) in seen:
            return
        seen.add(id(owner))
        for name, value in vars(owner).items():
            if isinstance(value, torch.Tensor):
                found.append((owner, name, value))
            elif hasattr(value, "__dict__") and not isinstance(value, _SKIPPED) and not callable(value):
                visit(value)

    for module in modules:
        for state in module.get_streaming_state().values():
            if state is not None:
                visit(state)
    return found


class StatePinning:
    """Keeps the modules' streaming-state tensors at fixed addresses across a captured function."""

    def __init__(self, modules: list[StreamingModule]) -> None:
        self.modules = modules

    @contextmanager
    def pinned(self) -> Iterator[None]:
        before = state_tensors(self.modules)
        yield
        for owner, name, tensor in before:
            current = getattr(owner, name)
            if current is not tensor:
                tensor.copy_(current)
                setattr(owner, name, tensor)

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def pinned_function(*args: Any) -> Any:
            with self.pinned():
                return function(*args)
        return pinned_function

