"""SIP requests and responses on the wire (RFC 3261 sections 7, 8.2.6, 17.2.3, 18.3): what
the listener needs to answer a phone correctly, and nothing it does not.

A request is parsed into its method, URI, headers (compact forms expanded, repeated ones
kept in order, Via values split at commas) and body. `ParseError` says what is wrong;
once the headers a response needs are known it carries them, so that even a malformed
request is answered `400` to the right transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
    "c": "content-type", "o": "event", "k": "supported", "e": "content-encoding", "s": "subject",
}  # fmt: skip
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP/2\.0$")
_CSEQ = re.compile(r"^\s*(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*$")
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)
NEEDED = ("via", "from", "to", "call-id", "cseq")
REASONS = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    489: "Bad Event",
    500: "Server Internal Error",
    503: "Service Unavailable",
}


class ParseError(ValueError):
    def __init__(self, reason: str, request: Request | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request  # what was parsed, when enough to answer it


@dataclass
class Request:
    method: str
    uri: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def one(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    @property
    def vias(self) -> list[str]:
        return [part.strip() for value in self.all("via") for part in _split_commas(value)]

    @property
    def cseq(self) -> tuple[int, str]:
        match = _CSEQ.match(self.one("cseq") or "")
        assert match is not None  # checked by parse_request
        return int(match.group(1)), match.group(2)

    def transaction_key(self) -> tuple[str, ...]:
        """RFC 3261 17.2.3: the top Via's branch (RFC 3261 magic cookie) and sent-by, and
        the method; older phones' requests are matched by Call-ID, CSeq and From tag."""
        top = self.vias[0]
        match = _BRANCH.search(top)
        sent_by = top.split(None, 1)[1].split(";", 1)[0].strip().lower() if " " in top else top
        method = self.cseq[1]
        if match and match.group(1).startswith("z9hG4bK"):
            return ("3261", match.group(1), sent_by, method)
        return ("2543", self.one("call-id") or "", str(self.cseq[0]), method, self.one("from") or "", sent_by)


def _split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    parts, depth, quoted, start = [], 0, False, 0
    for n, ch in enumerate(value):
        if ch == '"' and (n == 0 or value[n - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and not depth and ch == ",":
            parts.append(value[start:n])
            start = n + 1
    parts.append(value[start:])
    return [p for p in parts if p.strip()]


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """The head (start line and headers) and what follows the blank line; None when the
    blank line has not arrived yet. Bare-LF line ends are accepted."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = data.find(sep)
        if at >= 0:
            return data[:at], data[at + len(sep) :]
    return None


def parse_head(head: bytes) -> Request:
    """The start line and headers of a request (no body yet)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("the request's head is not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():  # RFC 3261 7.5: ignore CRLFs before the start line
        lines.pop(0)
    if not lines:
        raise ParseError("empty message")
    if lines[0].startswith("SIP/2.0 "):
        raise ParseError("a response, not a request")
    match = _REQUEST_LINE.match(lines[0].strip())
    if match is None:
        raise ParseError(f"bad request line {lines[0][:80]!r}")
    request = Request(match.group(1), match.group(2))
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and request.headers:  # folded onto the previous header
            name, value = request.headers[-1]
            request.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not _TOKEN.match(name):
            raise ParseError(f"bad header line {line[:80]!r}", _answerable(request))
        request.headers.append((COMPACT.get(name, name), value.strip()))
    missing = [n for n in NEEDED if request.one(n) is None]
    if missing:
        raise ParseError(f"no {', '.join(missing)} header", _answerable(request))
    if _CSEQ.match(request.one("cseq") or "") is None:
        raise ParseError(f"bad CSeq {request.one('cseq')!r}")
    if request.cseq[1] != request.method:
        raise ParseError(f"CSeq method {request.cseq[1]} is not the request's {request.method}", request)
    if not request.vias[0].upper().startswith("SIP/2.0/"):
        raise ParseError("bad Via", request)
    return request


def _answerable(request: Request) -> Request | None:
    if all(request.one(n) is not None for n in NEEDED) and _CSEQ.match(request.one("cseq") or ""):
        return request if request.vias and request.vias[0].upper().startswith("SIP/2.0/") else None
    return None


def content_length(request: Request) -> int | None:
    raw = request.one("content-length")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ParseError(f"bad Content-Length {raw[:20]!r}", request)
    return int(raw)


def parse_datagram(data: bytes) -> Request:
    """A whole request in one UDP datagram (RFC 3261 18.3: Content-Length, when present,
    bounds the body; without it the body is the rest of the datagram)."""
    parts = split_head(data)
    if parts is None:
        raise ParseError("no blank line after the headers")
    head, rest = parts
    request = parse_head(head)
    length = content_length(request)
    if length is not None:
        if length > len(rest):
            raise ParseError(f"Content-Length {length} but {len(rest)} bytes of body", request)
        rest = rest[:length]
    request.body = rest
    return request


def response(request: Request, status: int, to_tag: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    """A response to `request` (RFC 3261 8.2.6.2): its Vias, From, Call-ID and CSeq as they
    were, its To with our tag added when it has none, and no body."""
    lines = [f"SIP/2.0 {status} {REASONS.get(status, 'Error')}"]
    lines += [f"Via: {via}" for via in request.all("via")]
    to = request.one("to") or ""
    if not _TAG.search(to):
        to = f"{to};tag={to_tag}"
    lines += [
        f"From: {request.one('from')}",
        f"To: {to}",
        f"Call-ID: {request.one('call-id')}",
        f"CSeq: {request.one('cseq')}",
        *(f"{name}: {value}" for name, value in extra or []),
        "Server: hookflash",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
