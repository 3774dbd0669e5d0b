"""What the InfluxDB v2 write API's answers mean for a post: the server's reason (made safe
to log), Retry-After, and how many extra posts isolating refused lines may cost."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_MAX_REASON = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def server_message(body: object, secret: str = "") -> str:
    """The server's error message, one line, at most 300 characters: the `message` of an
    InfluxDB JSON error, or the text as is (VictoriaMetrics answers in plain text). The token
    is never echoed by a server; it is masked anyway, should a proxy do so."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = parsed["message"]
    if secret:
        text = text.replace(secret, "***")
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110); None when
    absent or unreadable. A date in the past means "now" (0)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def isolation_budget(lines: int) -> int:
    """Extra posts allowed to isolate the refused lines of one post of `lines` lines.

    One bad line costs 2 posts per halving (about 26 for 5,000 lines), so 8 per halving
    level (104 for 5,000 lines) isolates about four bad lines scattered anywhere. When the
    bad lines are more or denser, the budget runs out and the pieces still refused (small
    by then) are rejected whole: a post of 5,000 bad lines costs ~100 requests, not ~10,000.
    """
    return 8 * max(1, lines.bit_length())
