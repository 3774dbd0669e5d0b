"""The SIP source: a UDP, TCP and (with a certificate) TLS listener for the RFC 6035
`vq-rtcpxr` PUBLISH requests phones send about their calls.

Each request is answered as RFC 3261 asks of a server transaction: `200` once the report
is settled by the intake (queued and written, quarantined as `400`, or dropped on purpose:
an unknown phone or a stopped account is answered `200` too, so that it neither retries
forever nor learns which phones are provisioned), `489` for another event package, `415`
for another body type, `405` with `Allow` for other methods, `200` to OPTIONS, `503` when
the pipeline is full. A retransmission (the same top Via branch, sent-by and method) is
answered with the first response, or absorbed while that is pending, and reaches the
intake once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from collector.config.sip import SipConfig, parse_listen
from collector.core.interfaces import SourceContext, Verdict
from collector.core.records import Received
from collector.sources.answers import PENDING, RecentAnswers
from collector.sources.sip.message import (
    ParseError,
    Request,
    content_length,
    parse_datagram,
    parse_head,
    response,
    split_head,
)
from provisioning.events import LifecycleEvent

log = logging.getLogger(__name__)

EVENT = "vq-rtcpxr"
CONTENT_TYPE = "application/vq-rtcpxr"
ALLOW = "PUBLISH, OPTIONS"
TRANSACTION_S = 32.0  # RFC 3261 Timer J for UDP (64*T1): how long a response is resent
_QUARANTINED = '399 hookflash "the report is malformed; set aside with the reason"'
UDP_BUFFER = 4 << 20
Send = Callable[[bytes], None]


class SipListener:
    """`hookflash.sources` plugin `sip`."""

    name = "sip"

    def __init__(self, config: SipConfig) -> None:
        self._config = config
        self._context: SourceContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.Server] = []
        self._transactions = RecentAnswers(TRANSACTION_S)
        self._connections: set[asyncio.StreamWriter] = set()
        self._tag = secrets.token_hex(4)
        self.ports: dict[str, int] = {}  # transport -> the port bound (for listen = ":0")
        self.retransmissions = 0
        self.bad_requests = 0

    # -- Source ---------------------------------------------------------------------------------

    async def start(self, context: SourceContext) -> None:
        self._context = context
        self._loop = asyncio.get_running_loop()
        host, port = parse_listen(self._config.listen)
        self._udp, _ = await self._loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(host, port)
        )
        self.ports["udp"] = self._udp.get_extra_info("sockname")[1]
        # A burst of reports (calls ending at the hour) must wait in the kernel, not be lost
        # to it: as large a buffer as the system allows (net.core.rmem_max), up to 4 MiB.
        with contextlib.suppress(OSError):
            self._udp.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        if self._config.tcp:
            server = await asyncio.start_server(self._stream, host, self.ports["udp"], limit=self._limit())
            self._servers.append(server)
            self.ports["tcp"] = server.sockets[0].getsockname()[1]
        if self._config.tls:
            tls_host, tls_port = parse_listen(self._config.tls_listen)
            server = await asyncio.start_server(
                self._stream, tls_host, tls_port, ssl=self._tls_context(), limit=self._limit()
            )
            self._servers.append(server)
            self.ports["tls"] = server.sockets[0].getsockname()[1]
        log.info(
            "SIP listener for vq-rtcpxr reports on %s",
            ", ".join(f"{t.upper()} {host}:{p}" for t, p in self.ports.items()),
        )

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for writer in list(self._connections):
            writer.close()
        for server in self._servers:
            await server.wait_closed()

    def on_event(self, event: LifecycleEvent) -> None:
        """Nothing to drop: the intake decides about each report as it arrives."""

    def _limit(self) -> int:
        return self._config.max_message_bytes + 1024

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        assert self._config.tls_cert is not None and self._config.tls_key is not None
        context.load_cert_chain(self._config.tls_cert, self._config.tls_key)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    # -- one request, whatever carried it --------------------------------------------------------

    def handle(self, request: Request, peer: tuple[str, int], transport: str, send: Send) -> None:
        """Answer one request. Never raises (the socket callbacks call it)."""
        try:
            self._handle(request, peer, transport, send)
        except Exception:
            assert self._context is not None
            self._context.stats.source_faults += 1
            log.exception("a SIP %s from %s:%d could not be handled", request.method, *peer[:2])
            send(response(request, 500, self._tag))

    def refuse(self, error: ParseError, peer: tuple[str, int], send: Send) -> None:
        """A request that is malformed: answered 400 when it says enough to be answered."""
        self.bad_requests += 1
        log.debug("malformed SIP request from %s:%d: %s", peer[0], peer[1], error.reason)
        if error.request is not None:
            warning = error.reason.replace('"', "'")[:120]
            send(response(error.request, 400, self._tag, [("Warning", f'399 hookflash "{warning}"')]))

    def _handle(self, request: Request, peer: tuple[str, int], transport: str, send: Send) -> None:
        if request.method == "ACK":
            return  # acknowledges a final response to an INVITE: no answer (RFC 3261 17.2.1)
        key = request.transaction_key()
        known = self._transactions.get(key)
        if known is not None:
            self.retransmissions += 1
            if known is not PENDING:
                send(known)
            return
        if request.method == "OPTIONS":
            self._answer(key, request, 200, send, [("Allow", ALLOW), ("Accept", CONTENT_TYPE)])
        elif request.method != "PUBLISH":
            self._answer(key, request, 405, send, [("Allow", ALLOW)])
        elif _token(request.one("event")) != EVENT:
            self._answer(key, request, 489, send, [("Allow-Events", EVENT)])
        elif _token(request.one("content-type")) != CONTENT_TYPE:
            self._answer(key, request, 415, send, [("Accept", CONTENT_TYPE)])
        else:
            self._publish(key, request, peer, transport, send)

    def _publish(
        self, key: tuple[str, ...], request: Request, peer: tuple[str, int], transport: str, send: Send
    ) -> None:
        assert self._context is not None and self._loop is not None
        loop = self._loop
        self._transactions.put(key)
        verdict: list[Verdict] = []  # the intake's, known before `settled` runs (call_soon)

        def settled() -> None:
            if verdict and verdict[0] is Verdict.QUARANTINED:
                answer = response(request, 400, self._tag, [("Warning", _QUARANTINED)])
            else:
                answer = response(
                    request, 200, self._tag, [("SIP-ETag", secrets.token_hex(6)), ("Expires", "0")]
                )
            self._transactions.put(key, answer)
            send(answer)

        def ack() -> None:  # from the loop or the writer thread
            loop.call_soon_threadsafe(settled)

        self._context.stats.messages_received += 1
        origin = f"{request.one('from') or ''} from {peer[0]}:{peer[1]}"
        if transport != "udp":
            origin += f";transport={transport}"
        verdict.append(
            self._context.intake.receive(Received("sip", origin, request.body, datetime.now(UTC), ack))
        )
        if verdict[0] is Verdict.REFUSED:  # full: the phone may send it again later
            self._transactions.forget(key)
            send(response(request, 503, self._tag, [("Retry-After", "5")]))

    def _answer(
        self, key: tuple[str, ...], request: Request, status: int, send: Send, extra: list[tuple[str, str]]
    ) -> None:
        answer = response(request, status, self._tag, extra)
        self._transactions.put(key, answer)
        send(answer)

    # -- TCP and TLS -------------------------------------------------------------------------------

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        transport = "tls" if writer.get_extra_info("sslcontext") is not None else "tcp"
        if len(self._connections) >= self._config.max_connections:
            log.warning(
                "SIP: %d connections open, the most allowed; closing %s:%d", len(self._connections), *peer
            )
            writer.close()
            return
        self._connections.add(writer)

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        try:
            while True:
                request = await self._read_one(reader, peer, send)
                if request is None:
                    break
                self.handle(request, peer, transport, send)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except Exception:
            assert self._context is not None
            self._context.stats.source_faults += 1
            log.exception("SIP connection from %s:%d failed", *peer)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _read_one(
        self, reader: asyncio.StreamReader, peer: tuple[str, int], send: Send
    ) -> Request | None:
        """The next request on a stream, None at its end or after a framing error (a stream
        cannot be resynchronised: it is answered if it can be, then closed)."""
        timeout = self._config.idle_timeout_s
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.LimitOverrunError:
                self.refuse(ParseError("headers longer than max_message_bytes"), peer, send)
                return None
            except asyncio.IncompleteReadError:
                return None
            if head.strip():
                break  # else a keep-alive CRLFCRLF (RFC 5626)
        parts = split_head(head)
        assert parts is not None
        try:
            request = parse_head(parts[0])
            length = content_length(request)
            if length is None:
                raise ParseError("no Content-Length (required on a stream, RFC 3261 18.3)", request)
        except ParseError as exc:
            self.refuse(exc, peer, send)
            return None
        if length > self._config.max_message_bytes:
            self.bad_requests += 1
            send(response(request, 413, self._tag))
            return None
        request.body = await asyncio.wait_for(reader.readexactly(length), timeout)
        return request


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: SipListener) -> None:
        self._listener = listener
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        peer = (str(addr[0]), int(addr[1]))
        transport = self._transport
        assert transport is not None

        def send(answer: bytes) -> None:
            if not transport.is_closing():
                transport.sendto(answer, addr)

        listener = self._listener
        try:
            if not data.strip():
                return  # a keep-alive
            if len(data) > listener._config.max_message_bytes:
                raise ParseError(f"datagram of {len(data)} bytes, more than max_message_bytes")
            request = parse_datagram(data)
        except ParseError as exc:
            listener.refuse(exc, peer, send)
            return
        except Exception:
            assert listener._context is not None
            listener._context.stats.source_faults += 1
            log.exception("a SIP datagram from %s:%d could not be read", *peer)
            return
        listener.handle(request, peer, "udp", send)


def _token(value: str | None) -> str:
    """A header's value without parameters, lower-case (`vq-rtcpxr;id=1` -> `vq-rtcpxr`)."""
    return (value or "").split(";", 1)[0].strip().lower()
