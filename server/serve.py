"""`antiphon serve`: build the engine from the command line's choices and run the app under uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import torch
import uvicorn

from ..models.loader import ModelLoadError, load_model
from .access import AccessPolicy
from .app import create_app
from .engine import Engine
from .lifecycle import Lifecycle
from .metrics import Metrics
from .params import defaults_from_lm_gen_config
from .scheduler import Scheduler
from .session import ServerContext, SessionLimits

logger = logging.getLogger(__name__)
# uvicorn's own ceiling; the session's smaller, configurable limit answers with a readable error.
_TRANSPORT_MAX_BYTES = 16 * 1024 * 1024


class ServeError(Exception):
    """A configuration problem, reported as one line."""


def serve(args: argparse.Namespace) -> None:
    device = _device(args.device)
    if args.slots < 1:
        raise ServeError(f"--slots must be at least 1 (got {args.slots})")
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ServeError("--ssl-certfile and --ssl-keyfile go together")
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    try:
        model = load_model(args.model, device=device, dtype=dtype, random_weights=args.random_weights,
                           context=args.context_frames, decoder_dtype=getattr(torch, args.decoder_dtype),
                           int8_weights=args.int8_weights)
    except ModelLoadError as exc:
        raise ServeError(str(exc)) from None
    engine = Engine(model, args.slots, frame_graphs=args.frame_graphs,
                    compile_backend="inductor" if args.compile else None)
    logger.info("warming up %d slots on %s", args.slots, device)
    engine.warmup()
    metrics = Metrics(args.slots)
    limits = SessionLimits(max_message_bytes=args.max_message_kib * 1024, idle_seconds=args.idle_seconds,
                           outbox_frames=args.send_queue_frames,
                           max_messages_per_second=args.max_messages_per_second)
    access = AccessPolicy(auth_token=args.auth_token or os.environ.get("ANTIPHON_AUTH_TOKEN") or None,
                          allowed_origins=frozenset(args.allowed_origin),
                          max_sessions_per_client=args.max_sessions_per_client)
    context = ServerContext(Scheduler(engine, metrics), metrics, model.name, model.untrained, limits,
                            defaults=defaults_from_lm_gen_config(model.lm_gen_config), access=access)
    config = uvicorn.Config(create_app(context), host=args.host, port=args.port,
                            ws_max_size=_TRANSPORT_MAX_BYTES, ws_ping_interval=args.ping_seconds,
                            ws_ping_timeout=args.ping_seconds, ssl_certfile=args.ssl_certfile,
                            ssl_keyfile=args.ssl_keyfile, log_level=args.log_level.lower())
    scheme = "wss" if args.ssl_certfile else "ws"
    logger.info("serving %s on %s://%s:%d/api/chat", model.name, scheme, args.host, args.port)
    DrainingServer(config, context.lifecycle, args.grace_seconds).run()


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM or SIGINT drains live sessions before the shutdown and
    the process then exits 0, as an orchestrator expects of a clean stop (uvicorn itself re-raises the
    signal after shutting down). A second signal shuts down at once."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, grace_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.grace_seconds = grace_seconds
        self._drain: asyncio.Task | None = None

    def handle_exit(self, sig, frame) -> None:
        if self._drain is not None or not self.started:
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_event_loop()

        async def drain_then_exit() -> None:
            await self.lifecycle.drain(self.grace_seconds)
            self.should_exit = True

        self._drain = loop.create_task(drain_then_exit())


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
