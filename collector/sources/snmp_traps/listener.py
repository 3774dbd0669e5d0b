"""The SNMP notification source: a UDP listener for v2c traps and informs.

A notification with a community of the configured credential sets is handed to the intake
as the varbinds it carries (the device is the one provisioned on the sending host; its
profile reads the varbinds like a poll's). An inform is acknowledged with its Response PDU
only once settled: its records written, or dropped on purpose (an unprovisioned host, a
stopped account); one refused because the pipeline is full is not acknowledged, so the
sender retries. A retransmitted inform (same host, port and request-id within 30 s) is
answered again and reaches the intake once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from collector.config.sip import parse_listen
from collector.config.snmp import TrapConfig
from collector.core.interfaces import SourceContext, Verdict
from collector.core.records import Received, Varbinds
from collector.sources.answers import PENDING, RecentAnswers
from collector.sources.snmp.codec import CodecError, decode_notification
from provisioning.events import LifecycleEvent

log = logging.getLogger(__name__)
INFORM_MEMORY_S = 30.0


class TrapListener:
    """`collector.runtime.plugins` source `snmp_trap`."""

    name = "snmp_trap"

    def __init__(self, config: TrapConfig, communities: frozenset[bytes]) -> None:
        self._config = config
        self._communities = communities
        self._context: SourceContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._informs = RecentAnswers(INFORM_MEMORY_S)  # (host, port, request-id) -> Response PDU
        self.port = 0
        self.refused = 0  # not a v2c notification, or a community not configured

    async def start(self, context: SourceContext) -> None:
        self._context = context
        self._loop = asyncio.get_running_loop()
        host, port = parse_listen(self._config.listen)
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = self._transport.get_extra_info("sockname")[1]
        log.info("SNMP trap and inform listener on UDP %s:%d", host, self.port)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def on_event(self, event: LifecycleEvent) -> None:
        """Nothing to drop: the intake decides about each notification as it arrives."""

    def received(self, data: bytes, peer: tuple[str, int]) -> None:
        assert self._context is not None and self._loop is not None and self._transport is not None
        try:
            note = decode_notification(data)
        except CodecError as exc:
            self.refused += 1
            log.debug("not a v2c notification from %s:%d: %s", peer[0], peer[1], exc)
            return
        if note.community not in self._communities:
            self.refused += 1
            log.debug("a notification from %s:%d with a community not configured", *peer)
            return
        transport, loop = self._transport, self._loop
        key = (peer[0], peer[1], note.request_id)
        if note.inform and (answer := self._informs.get(key)) is not None:  # a retransmission
            if answer is not PENDING:
                transport.sendto(answer, peer)
            return
        ack = None
        if note.inform:
            self._informs.put(key)
            response = note.response
            assert response is not None

            def settled() -> None:
                self._informs.put(key, response)
                if not transport.is_closing():
                    transport.sendto(response, peer)

            def ack() -> None:  # from the loop or the writer thread
                loop.call_soon_threadsafe(settled)

        self._context.stats.messages_received += 1
        varbinds = Varbinds(dict(note.varbinds))
        item = Received("snmp_trap", f"{peer[0]}:{peer[1]}", varbinds, datetime.now(UTC), ack)
        if self._context.intake.receive(item) is Verdict.REFUSED and note.inform:
            self._informs.forget(key)  # unacknowledged: the sender tries again


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: TrapListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self._listener.received(data, (str(addr[0]), int(addr[1])))
        except Exception:  # the fault boundary of this socket's callback
            context = self._listener._context
            if context is not None:
                context.stats.source_faults += 1
            log.exception("a datagram from %s could not be handled", addr[0])
