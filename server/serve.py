"""`antiphon serve`: build the engine from the command line's choices and run the app under uvicorn."""

from __future__ import annotations

import argparse
import logging

import torch
import uvicorn

from ..models.loader import ModelLoadError, load_model
from .app import create_app
from .engine import Engine
from .metrics import Metrics
from .scheduler import Scheduler
from .session import SessionLimits

logger = logging.getLogger(__name__)
# uvicorn's own ceiling; the session's smaller, configurable limit answers with a readable error.
_TRANSPORT_MAX_BYTES = 16 * 1024 * 1024


class ServeError(Exception):
    """A configuration problem, reported as one line."""


def serve(args: argparse.Namespace) -> None:
    device = _device(args.device)
    if args.slots < 1:
        raise ServeError(f"--slots must be at least 1 (got {args.slots})")
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    try:
        model = load_model(args.model, device=device, dtype=dtype, random_weights=args.random_weights)
    except ModelLoadError as exc:
        raise ServeError(str(exc)) from None
    engine = Engine(model, args.slots)
    logger.info("warming up %d slots on %s", args.slots, device)
    engine.warmup()
    metrics = Metrics(args.slots)
    limits = SessionLimits(max_message_bytes=args.max_message_kib * 1024, idle_seconds=args.idle_seconds,
                           outbox_frames=args.send_queue_frames)
    app = create_app(Scheduler(engine, metrics), metrics, model.name, model.untrained, limits)
    logger.info("serving %s on ws://%s:%d/api/chat", model.name, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, ws_max_size=_TRANSPORT_MAX_BYTES,
                ws_ping_interval=args.ping_seconds, ws_ping_timeout=args.ping_seconds,
                log_level=args.log_level.lower())


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ServeError(f"--device {name!r} is not a device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ServeError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ServeError(f"--device {name}: only cpu and cuda are supported")
    return device
