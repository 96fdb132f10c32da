"""The FastAPI application: routes only; sessions, scheduling and the engine live in their own modules."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib.metadata import version
from importlib.resources import files

from fastapi import FastAPI, Response, WebSocket
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .session import ServerContext, Session


def create_app(context: ServerContext) -> FastAPI:
    """An app serving the context's engine; the scheduler's thread runs while the app does."""
    scheduler, metrics = context.scheduler, context.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    app = FastAPI(title="Antiphon", version=version("antiphon"), lifespan=lifespan)

    @app.websocket("/api/chat")
    async def chat(websocket: WebSocket) -> None:
        await Session(websocket, context).run()

    @app.get("/healthz")
    def healthz() -> Response:
        if context.lifecycle.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if scheduler.healthy:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "failed", "reason": scheduler.failure or "engine stopped"},
                            status_code=503)

    @app.get("/api/info")
    def info() -> dict:
        used = scheduler.used_slots()
        return {
            "model": context.model_name,
            "untrained": context.untrained,
            "version": version("antiphon"),
            "slots": {"total": scheduler.slots, "used": used, "free": scheduler.slots - used},
            "device": str(scheduler.engine.device),
            "sample_rate": scheduler.engine.sample_rate,
            "frame_size": scheduler.engine.frame_size,
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # The browser client, last so that it never shadows the routes above.
    app.mount("/", StaticFiles(directory=str(files("antiphon.client") / "web"), html=True), name="client")
    return app
