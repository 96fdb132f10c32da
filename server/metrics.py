"""Prometheus metrics of one server (one registry per server, so several can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Tick durations around the 80 ms frame budget.
_TICK_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.2, 0.4, 1.0)


class Metrics:
    def __init__(self, slots: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.slots = Gauge("antiphon_slots", "Slots the engine was built for", registry=r)
        self.slots.set(slots)
        self.sessions_active = Gauge("antiphon_sessions_active", "Sessions holding a slot", registry=r)
        self.sessions = Counter("antiphon_sessions", "Sessions that got a slot", registry=r)
        self.refused = Counter("antiphon_refused_sessions", "Connections refused before getting a slot",
                               ["reason"], registry=r)
        self.errors = Counter("antiphon_session_errors", "Sessions ended by an error, by kind",
                              ["kind"], registry=r)
        self.tick_seconds = Histogram("antiphon_tick_seconds", "Duration of one engine tick",
                                      buckets=_TICK_BUCKETS, registry=r)
        self.late_frames = Counter(
            "antiphon_late_frames", "Ticks in which a live session had no input frame ready", registry=r)
        self.overrun_ticks = Counter(
            "antiphon_overrun_ticks", "Ticks that took longer than a frame: the engine fell behind the audio "
            "clock", registry=r)
        self.frames = Counter("antiphon_frames", "Session frames stepped by the engine", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
