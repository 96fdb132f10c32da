"""Calling a function in a forked child of this process, for code whose hidden state must not outlive
the call: the child starts from this process's state, and what the call changes there goes with it."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def call_in_child(function: Callable[..., Result], *args, **kwargs) -> Result:
    """`function(*args, **kwargs)` run in a forked child; its result (or its exception) comes back
    pickled. The child leaves with `os._exit`, running none of the parent's exit handlers."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        status = 0
        try:
            result: object = function(*args, **kwargs)
        except BaseException as error:  # raised again in the parent
            result, status = error, 1
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(pickle.dumps(result))
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(child, 0)
    if not payload:
        raise RuntimeError(f"{function.__qualname__} ended in its child without a result (wait status {status})")
    result = pickle.loads(payload)
    if isinstance(result, BaseException):
        raise result
    return result
