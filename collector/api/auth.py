"""Bearer tokens with scopes, checked by a dependency on every route (no path matching):
`read` for the NOC views, dashboard data, /metrics and /docs; `deactivate` for billing's
deactivation calls and their receipts; `admin` for everything, reactivation included.
Tokens are compared in constant time against every configured one; the name of the token
that made a request, never its value, goes to the audit log. Deactivation requests are
rate-limited per token (a token bucket): past it, 429 with Retry-After."""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, HTTPException, status

from collector.config import ResolvedToken


@dataclass
class _Bucket:
    tokens: float
    at: float


class Auth:
    def __init__(self, tokens: Sequence[ResolvedToken], burst: int = 20, per_s: float = 5.0) -> None:
        self._tokens = list(tokens)
        self._burst, self._per_s = burst, per_s
        self._buckets: dict[str, _Bucket] = {}

    def caller(self, authorization: str | None) -> ResolvedToken:
        scheme, _, presented = (authorization or "").partition(" ")
        found = None
        for token in self._tokens:  # every one compared: the time does not tell which matched
            if hmac.compare_digest(presented.encode(), token.secret.encode()) and scheme.lower() == "bearer":
                found = token
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    def needs(self, scope: str, *, open_: bool = False) -> Callable[..., ResolvedToken | None]:
        """A dependency: the calling token, which must hold `scope` (or admin)."""

        def dependency(authorization: Annotated[str | None, Header()] = None) -> ResolvedToken | None:
            if open_:
                return None
            token = self.caller(authorization)
            if scope not in token.scopes and "admin" not in token.scopes:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"token {token.name!r} has no {scope!r} scope")
            return token

        return dependency

    def limit(self, token: ResolvedToken) -> None:
        """One request of `token` against its bucket; 429 when it is empty."""
        now = time.monotonic()
        bucket = self._buckets.setdefault(token.name, _Bucket(float(self._burst), now))
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._per_s)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / self._per_s)
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"more than {self._burst} deactivation requests at once for token {token.name!r}",
                headers={"Retry-After": str(max(1, wait))},
            )
        bucket.tokens -= 1.0
