"""The v2c hot path: one non-blocking UDP socket for every request, pre-encoded request
templates with only the request id patched in, and a lean decoder for the responses.

pysnmp stays what the engine is for (SNMPv3 USM, engine discovery); for v2c GETs it
spends about 1 ms per 17-varbind request in pyasn1, which caps a core at ~150 polls/s.
Responses are matched by request id (random 31-bit, so stray or spoofed packets are
unlikely to match) and by the address the request went to.
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass, field

from collector.core.errors import SourceError
from collector.core.records import RawValue
from collector.sources.snmp.codec import (
    GetBulkRequestTemplate,
    GetRequestTemplate,
    Response,
    decode_response,
)

_MIN_ID, _MAX_ID = 2**23, 2**31 - 1
RECEIVE_BUFFER = 8 * 1024 * 1024


@dataclass
class ClientCounters:
    sent: int = 0
    received: int = 0
    timeouts: int = 0
    malformed: int = 0
    unmatched: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class V2cClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        # request id -> (future, the agent's address, the community asked with)
        self._pending: dict[int, tuple[asyncio.Future[Response], tuple[str, int], bytes]] = {}
        # Ids from 2**23 up encode in exactly the 4 bytes the template reserves (minimal BER).
        # Each is drawn at random: with ids counted up, a datagram forged with the id after
        # one seen would be taken as another device's answer.
        self._ids = random.Random()
        self.counters = ClientCounters()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("0.0.0.0", 0))
        self._transport = transport
        sock = transport.get_extra_info("socket")
        # Hundreds of answers can land while the loop is busy; the default buffer (~200 KiB,
        # ~90 small datagrams after kernel overhead) would drop them. The kernel caps this
        # at net.core.rmem_max.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        for future, _addr, _community in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()

    async def get(self, address: tuple[str, int], template: GetRequestTemplate, timeout: float) -> Response:
        """Send one GET; the decoded response, or TimeoutError after `timeout` seconds."""
        if self._transport is None:
            raise RuntimeError("V2cClient.start() was not awaited")
        loop = asyncio.get_running_loop()
        request_id = self._ids.randrange(_MIN_ID, _MAX_ID)
        while request_id in self._pending:
            request_id = self._ids.randrange(_MIN_ID, _MAX_ID)
        future: asyncio.Future[Response] = loop.create_future()
        self._pending[request_id] = (future, address, template.community)
        expiry = loop.call_later(timeout, self._expire, request_id)
        try:
            self._transport.sendto(template.encode(request_id), address)
            self.counters.sent += 1
            return await future
        finally:
            expiry.cancel()
            self._pending.pop(request_id, None)

    def _expire(self, request_id: int) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is not None and not entry[0].done():
            self.counters.timeouts += 1
            entry[0].set_exception(TimeoutError("no SNMP response before the timeout"))

    # -- asyncio.DatagramProtocol ---------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Anyone can send a datagram here: whatever it holds, nothing escapes (a datagram
        that makes the codec fail in any way counts as malformed), and only the answer
        from the address asked, with the request id and the community sent, settles a
        request."""
        try:
            response = decode_response(data)
        except Exception:  # CodecError, and anything the codec did not foresee
            self.counters.malformed += 1
            return
        entry = self._pending.get(response.request_id)
        if entry is None or entry[1] != addr[:2] or entry[2] != response.community or entry[0].done():
            self.counters.unmatched += 1
            return
        self.counters.received += 1
        entry[0].set_result(response)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the request simply times out.
        name = type(exc).__name__
        self.counters.errors[name] = self.counters.errors.get(name, 0) + 1


class FastGetter:
    """v2c GETs through the shared client, with a request template per community + OID set."""

    def __init__(self, timeout_s: float) -> None:
        self.client = V2cClient()
        self._timeout = timeout_s
        self._templates: dict[tuple[str, tuple[str, ...]], GetRequestTemplate] = {}

    async def start(self) -> None:
        await self.client.start()

    async def get(
        self, address: tuple[str, int], community: str, oids: list[str]
    ) -> dict[str, RawValue | None]:
        """One attempt; TimeoutError when nothing came back in time."""
        key = (community, tuple(oids))
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) > 4096:
                self._templates.clear()  # bounded: OID sets are per profile and kind tier
            template = self._templates[key] = GetRequestTemplate(community.encode(), oids)
        response = await self.client.get(address, template, self._timeout)
        if response.error_status:
            raise AgentError(f"agent error-status {response.error_status} at index {response.error_index}")
        return dict(response.varbinds)

    async def bulk(
        self, address: tuple[str, int], community: str, oids: list[str], max_repetitions: int
    ) -> list[tuple[str, RawValue | None]]:
        """One GETBULK (no non-repeaters); the varbinds in the order the agent sent them."""
        key = (community, (*oids, f"bulk:{max_repetitions}"))
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = GetBulkRequestTemplate(
                community.encode(), oids, max_repetitions
            )
        response = await self.client.get(address, template, self._timeout)
        if response.error_status:
            raise AgentError(f"agent error-status {response.error_status} at index {response.error_index}")
        return list(response.varbinds)

    def close(self) -> None:
        self.client.close()


class AgentError(SourceError):
    """The agent answered with a non-zero error-status."""
