"""The SNMP notification source: a UDP listener for v2c and v3 traps and informs.

A v2c notification with a community of the configured credential sets, or a v3 one that
passes the User-based Security Model for one of the configured v3 users (usm.py: digest,
time window, decryption; discovery answered with Reports), is handed to the intake
as the varbinds it carries (the device is the one provisioned on the sending host; its
profile reads the varbinds like a poll's). An inform is acknowledged with its Response PDU
only once settled: its records written, or dropped on purpose (an unprovisioned host, a
stopped account); one refused because the pipeline is full is not acknowledged, so the
sender retries. A retransmitted inform (same host, port and request-id within 30 s) is
answered again and reaches the intake once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from collector.config import ResolvedCredential
from collector.config.sip import parse_listen
from collector.config.snmp import TrapConfig
from collector.core.interfaces import SourceContext, Verdict
from collector.core.records import Received, Varbinds
from collector.sources.answers import PENDING, RecentAnswers
from collector.sources.snmp.codec import CodecError, Notification, decode_notification
from collector.sources.snmp.usm import UsmReceiver, V3Notification, is_v3
from provisioning.events import LifecycleEvent

log = logging.getLogger(__name__)
INFORM_MEMORY_S = 30.0


class TrapListener:
    """`collector.runtime.plugins` source `snmp_trap`."""

    name = "snmp_trap"

    def __init__(self, config: TrapConfig, credentials: list[ResolvedCredential], data_dir: Path) -> None:
        self._config = config
        self._communities = frozenset(c.community.encode() for c in credentials if c.version == "v2c")
        self._v3 = [c for c in credentials if c.version == "v3"]
        self._data_dir = data_dir
        self.usm: UsmReceiver | None = None
        self._context: SourceContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._informs = RecentAnswers(INFORM_MEMORY_S)  # (host, port, request-id) -> Response PDU
        self.port = 0
        self.refused = 0  # not a v2c notification, or a community not configured

    async def start(self, context: SourceContext) -> None:
        self._context = context
        self._loop = asyncio.get_running_loop()
        if self._v3:
            engine_id, boots = await asyncio.to_thread(_engine_state, self._data_dir, self._config.engine_id)
            self.usm = await asyncio.to_thread(UsmReceiver, self._v3, engine_id, boots)
            log.info("SNMPv3 notifications: engine ID 0x%s, boot %d", engine_id.hex(), boots)
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
        note, response = self._authentic(data, peer)
        if note is None:
            return
        transport, loop = self._transport, self._loop
        key = (peer[0], peer[1], note.request_id)
        if note.inform and (answer := self._informs.get(key)) is not None:  # a retransmission
            if answer is not PENDING and response is not None:
                transport.sendto(response, peer)  # encoded for this copy (a v3 resend has its own msgID)
            return
        ack = None
        if note.inform:
            self._informs.put(key)
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

    def _authentic(self, data: bytes, peer: tuple[str, int]) -> tuple[Notification | None, bytes | None]:
        """The notification and the answer an inform is owed; (None, None) when refused (a
        v3 discovery or time-window probe is answered here with its Report)."""
        assert self._transport is not None
        try:
            if is_v3(data):
                if self.usm is None:
                    raise CodecError("an SNMPv3 message, and no v3 credential set is configured", 0)
                got = self.usm.receive(data)
                if isinstance(got, bytes):
                    self._transport.sendto(got, peer)
                    return None, None
                assert isinstance(got, V3Notification)
                return got.notification, got.response
            note = decode_notification(data)
        except CodecError as exc:
            self.refused += 1
            log.debug("a datagram from %s:%d refused: %s", peer[0], peer[1], exc)
            return None, None
        if note.community not in self._communities:
            self.refused += 1
            log.debug("a notification from %s:%d with a community not configured", *peer)
            return None, None
        return note, note.response


def _engine_state(data_dir: Path, configured: str) -> tuple[bytes, int]:
    """This listener's engine ID and boot count (RFC 3414 2.2.2: one more at every start),
    kept in the data dir so that senders' cached engine clocks stay valid."""
    path = data_dir / "snmp-engine.json"
    state: dict[str, object] = {}
    if path.exists():
        state = json.loads(path.read_text(encoding="utf-8"))
    engine_hex = configured or str(state.get("engine_id") or "")
    if not engine_hex:
        # RFC 3411 SnmpEngineID format 5 (octets, administratively assigned) after the
        # reserved enterprise 0: 13 octets, random per data dir.
        engine_hex = (b"\x80\x00\x00\x00\x05" + os.urandom(8)).hex()
    boots_raw = state.get("boots", 0) if state.get("engine_id") == engine_hex else 0
    boots = int(boots_raw) + 1 if isinstance(boots_raw, int) else 1
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"engine_id": engine_hex, "boots": boots}, out)
    os.replace(tmp, path)
    return bytes.fromhex(engine_hex), boots


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
