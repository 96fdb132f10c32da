"""Who may open a session: an optional bearer token, an Origin allow-list, and a cap on sessions per
client address. Refusals are ProtocolErrors, so a refused client reads the reason in a 0x05 message."""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

from .protocol import CloseCode, ProtocolError


@dataclass
class AccessPolicy:
    auth_token: str | None = None
    allowed_origins: frozenset[str] = frozenset()  # empty: any origin
    max_sessions_per_client: int = 0               # 0: no cap
    _sessions: Counter = field(default_factory=Counter)

    def admit(self, headers: Mapping[str, str], query: Mapping[str, str], client: str) -> None:
        """Raise ProtocolError unless this connection may open a session; on success the caller owns one
        of `client`'s sessions until it calls `leave`."""
        if self.auth_token is not None:
            offered = _bearer(headers.get("authorization", "")) or query.get("auth_id", "")
            if not hmac.compare_digest(offered.encode(), self.auth_token.encode()):
                raise ProtocolError("unauthorized: send 'Authorization: Bearer TOKEN' or ?auth_id=TOKEN",
                                    CloseCode.POLICY, kind="unauthorized")
        origin = headers.get("origin")
        if self.allowed_origins and origin is not None and origin not in self.allowed_origins:
            raise ProtocolError(f"origin {origin} is not allowed", CloseCode.POLICY, kind="origin")
        if self.max_sessions_per_client and self._sessions[client] >= self.max_sessions_per_client:
            raise ProtocolError(f"too many sessions from {client}: at most {self.max_sessions_per_client}",
                                CloseCode.TRY_AGAIN_LATER, kind="client_limit")
        self._sessions[client] += 1

    def leave(self, client: str) -> None:
        self._sessions[client] -= 1
        if self._sessions[client] <= 0:
            del self._sessions[client]


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
