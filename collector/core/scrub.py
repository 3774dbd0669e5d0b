"""The secret scrubber (P7): what a device, a payload or a URL says that looks like a
secret is masked before anything is stored or logged.

A name is secret when one of its parts (split at `.`, `_`, `-`, `[`, `]`, `:` and camel
case) is, or contains, one of the words below, or it is a vendor's known password key:
Grandstream's P-values P2 (admin password) and P34 (account 1's SIP password), Yealink's
`account.N.password`, Poly's `reg.N.auth.password`, and so on through the words. Values
are masked in `key=value`, `key: value`, `"key": "value"` and `'key': 'value'` text, in
URL user-info (`scheme://user:password@host`), in SIP URIs with a password
(`sip:user:password@host`), in URL query parameters with a secret name, and in nested
mappings and lists at any depth.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_WORDS = ("pass", "pwd", "secret", "token", "key", "community", "auth", "cred", "passphrase")
_EXACT = frozenset({"psk", "pin", "p2", "p34", "pw", "sig", "signature", "apikey"})
_PARTS = re.compile(r"[._\-\[\]:/\s]+|(?<=[a-z])(?=[A-Z])")
_KEY = r"[A-Za-z_][\w.\-\[\]]{0,80}"
# key = value / key: value, optionally quoted ("key": "value", 'key': 'value'), the value
# quoted (complete or cut off) or bare up to a separator.
_ASSIGNMENT = re.compile(
    r"(?P<head>(?P<q>[\"']?)(?P<key>" + _KEY + r")(?P=q)\s*[:=]\s*)"
    r"(?P<value>\[[^\]]*\]?|\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[^\s,;&}\]\)\"']+)"
)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/@:]*:)(?P<secret>[^\s/@]+)(?=@)")
_QUERY = re.compile(r"(?P<head>[?&](?P<key>[^=&\s#]{1,80})=)(?P<value>[^&\s#]*)")
_SIP_PASSWORD = re.compile(r"(?P<head>\bsips?:[^\s:@;>]+:)(?P<secret>[^\s@;>]+)(?=@)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a key or field name says it holds a secret."""
    parts = [p.lower() for p in _PARTS.split(name) if p]
    if not parts:
        return False
    return any(p in _EXACT or any(w in p for w in _WORDS) for p in parts) or name.lower() in _EXACT


@functools.lru_cache(maxsize=1024)
def is_secret_field(name: str) -> bool:
    """`is_secret_name` for a record's field names, which come from the profiles (the same
    few, asked for every record): answered from a cache. Keys found in device text (a URL's
    query, `name=value`) are not cached: anything a device sends is kept no longer than it
    has to be."""
    return is_secret_name(name)


def might_hide_a_secret(text: str) -> bool:
    """Whether `text` has a separator a secret could follow (`=`, `:`, `@`); cheap."""
    return "=" in text or ":" in text or "@" in text


def scrub_text(text: str) -> str:
    """`text` with every secret it shows masked."""
    if not text or not might_hide_a_secret(text):
        return text  # the common case, cheaply
    text = _USERINFO.sub(lambda m: m["head"] + MASK, text)
    text = _SIP_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _QUERY.sub(lambda m: m["head"] + MASK if is_secret_name(m["key"]) else m[0], text)
    return _ASSIGNMENT.sub(_masked_assignment, text)


def _masked_assignment(match: re.Match[str]) -> str:
    if not is_secret_name(match["key"]):
        return match[0]
    value = match["value"]
    if value.startswith("["):
        return f"{match['head']}[{MASK}]"
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['head']}{quote}{MASK}{quote}"


def scrub(value: Any) -> Any:
    """A JSON-like value with secret-named entries masked and every string scrubbed."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: MASK if isinstance(k, str) and is_secret_name(k) else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def scrub_bytes(data: bytes) -> bytes:
    """Bytes scrubbed as text (invalid UTF-8 kept byte for byte)."""
    return scrub_text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class ScrubbingFilter:
    """A logging filter for handlers: every record's message, hookflash's and third-party
    libraries' alike (httpx logs each request's URL), leaves with secrets masked (URL
    user-info, query tokens, `password=…`, SIP URIs with a password)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: leave it to the handler to report
            return True
        scrubbed = scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        return True


def install_log_scrubbing() -> None:
    """Add the filter to every handler of the root logger (call after configuring it)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(ScrubbingFilter())
