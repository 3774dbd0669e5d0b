"""In-process SNMP command responder that impersonates one ATA/phone.

Used by ``hookflash demo`` and as a test fixture, so neither needs snmpd. Requests are decoded and
answered with pysnmp's low-level ``proto.api`` objects and pyasn1's BER codec: the full pysnmp
agent engine (MIB instrumentation, LCD, USM) is far heavier than a fake device needs.

TypedValue kind -> wire type, accepted Python value:
    integer    Integer32          int
    octets     OCTET STRING       str (sent as UTF-8) or bytes
    oid        OBJECT IDENTIFIER  dotted str
    timeticks  TimeTicks          int, hundredths of a second, wraps at 2**32
    gauge      Gauge32            int, clamped to 0..2**32-1 (gauges latch, they do not wrap)
    counter32  Counter32          int, wraps at 2**32 like a real counter
    counter64  Counter64          int, wraps at 2**64; invisible to v1 requests (RFC 2576 4.2.1)
    ipaddress  IpAddress          dotted-quad str or 4 bytes
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

Kind = Literal["integer", "octets", "oid", "timeticks", "gauge", "counter32", "counter64", "ipaddress"]


@dataclass(frozen=True)
class TypedValue:
    kind: Kind
    value: int | str | bytes


OidValues = Callable[[], Mapping[str, TypedValue]]
Oid = tuple[int, ...]

log = logging.getLogger(__name__)
_v2c = api.v2c
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
# Below a 1500-byte Ethernet MTU minus IP/UDP headers, so a bulk reply is never fragmented.
_MAX_RESPONSE = 1400
_NO_SUCH_NAME, _GEN_ERR, _NOT_WRITABLE = 2, 5, 17
# v1 and v2c PDUs share context tags, so one set of tags classifies both versions.
_GET, _NEXT = _v2c.GetRequestPDU.tagSet, _v2c.GetNextRequestPDU.tagSet
_BULK, _SET = _v2c.GetBulkRequestPDU.tagSet, _v2c.SetRequestPDU.tagSet
_NUMERIC: dict[str, Callable[[int], Any]] = {
    "integer": _v2c.Integer32,
    "timeticks": lambda n: _v2c.TimeTicks(n % 2**32),
    "gauge": lambda n: _v2c.Gauge32(min(max(n, 0), 2**32 - 1)),
    "counter32": lambda n: _v2c.Counter32(n % 2**32),
    "counter64": lambda n: _v2c.Counter64(n % 2**64),
}


def _asn1(tv: TypedValue) -> Any:
    # Check Python types explicitly: pyasn1 happily reads OctetString(5) as five NUL bytes and
    # ObjectIdentifier(b"1.3") as sub-ids 49.46.51, which would make bugs look like data.
    v = tv.value
    if tv.kind == "octets" and isinstance(v, str | bytes):
        return _v2c.OctetString(v.encode() if isinstance(v, str) else v)
    if tv.kind == "oid" and isinstance(v, str):
        return _v2c.ObjectIdentifier(v.strip("."))
    if tv.kind == "ipaddress" and isinstance(v, str | bytes):
        return _v2c.IpAddress(v)
    if tv.kind in _NUMERIC and isinstance(v, int) and not isinstance(v, bool):
        return _NUMERIC[tv.kind](v)
    raise TypeError(f"{tv.kind} cannot carry {v!r}")


class _View:
    """One snapshot of values() so a multi-varbind request sees a consistent device."""

    def __init__(self, values: Mapping[str, TypedValue], v1: bool) -> None:
        self._by_oid = {
            tuple(int(p) for p in k.strip(".").split(".")): tv
            for k, tv in values.items()
            if not (v1 and tv.kind == "counter64")
        }
        self._order = sorted(self._by_oid)  # tuple order, so .9 sorts before .10

    def get(self, oid: Oid) -> tuple[Oid, Any]:
        tv = self._by_oid.get(oid)
        return oid, _v2c.NoSuchObject("") if tv is None else _asn1(tv)

    def next(self, oid: Oid) -> tuple[Oid, Any]:
        i = bisect.bisect_right(self._order, oid)
        if i == len(self._order):
            return oid, _v2c.EndOfMibView("")
        return self._order[i], _asn1(self._by_oid[self._order[i]])


def _size(vb: tuple[Oid, Any]) -> int:
    bind = _v2c.VarBind()
    _v2c.apiVarBind.set_oid_value(bind, vb)
    return len(encoder.encode(bind))


def _is_exception(value: Any) -> bool:
    return value.tagSet in (_v2c.NoSuchObject.tagSet, _v2c.EndOfMibView.tagSet)


class SimulatedAgent:
    """One simulated device: a UDP endpoint on 127.0.0.1 answering GET, GETNEXT and GETBULK for
    v2c (plus v1 GET/GETNEXT)."""

    def __init__(self, community: str, values: OidValues) -> None:
        self.requests = 0
        self.rejected = 0
        self.port = 0
        self._community = community.encode()
        self._values = values
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # A simulator with a guessable community must never be reachable from the network.
        if host not in _LOOPBACK:
            raise ValueError(f"SimulatedAgent binds loopback only, not {host!r}")
        if self._transport is not None:
            raise RuntimeError("agent already started")
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self.port = int(self._transport.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)  # let the scheduled connection_lost close the socket

    def _handle(self, data: bytes) -> bytes | None:
        try:
            version = int(api.decodeMessageVersion(data))
            p_mod = api.PROTOCOL_MODULES[version]  # KeyError for v3: rejected like garbage
            msg, rest = decoder.decode(data, asn1Spec=p_mod.Message())
            pdu = p_mod.apiMessage.get_pdu(msg)
            # Responses/traps aimed at us are not requests; real agents drop them silently too.
            ok = (
                not rest
                and bytes(p_mod.apiMessage.get_community(msg)) == self._community
                and pdu.tagSet in (_GET, _NEXT, _BULK, _SET)
            )
        except Exception:
            ok = False
        if not ok:
            self.rejected += 1
            return None
        self.requests += 1
        reqs = [(o.asTuple(), v) for o, v in p_mod.apiPDU.get_varbinds(pdu)]
        rsp = p_mod.apiMessage.get_response(msg)
        rsp_pdu = p_mod.apiMessage.get_pdu(rsp)
        v1 = version == api.SNMP_VERSION_1
        try:
            if pdu.tagSet == _SET:
                return self._fail(p_mod, rsp, reqs, _NO_SUCH_NAME if v1 else _NOT_WRITABLE, 1)
            view = _View(self._values(), v1)
            if pdu.tagSet == _BULK:
                budget = _MAX_RESPONSE - len(encoder.encode(rsp)) - 8  # 8: longer length prefixes
                out = self._bulk(pdu, [o for o, _ in reqs], view, budget)
            else:
                out = [view.get(o) if pdu.tagSet == _GET else view.next(o) for o, _ in reqs]
            bad = [i for i, (_, v) in enumerate(out) if _is_exception(v)]
            if v1 and bad:  # v1 has no exception values, only an error status for the request
                return self._fail(p_mod, rsp, reqs, _NO_SUCH_NAME, bad[0] + 1)
            p_mod.apiPDU.set_varbinds(rsp_pdu, out)
            return bytes(encoder.encode(rsp))
        except Exception:
            # A broken values() callback or bad TypedValue is a simulator bug: say so to the
            # client (genErr) rather than letting it time out, and log the traceback.
            log.exception("simulated agent failed to answer")
            return self._fail(p_mod, rsp, reqs, _GEN_ERR, 0)

    @staticmethod
    def _fail(p_mod: Any, rsp: Any, reqs: list[tuple[Oid, Any]], status: int, index: int) -> bytes:
        rsp_pdu = p_mod.apiMessage.get_pdu(rsp)
        p_mod.apiPDU.set_error_status(rsp_pdu, status)
        p_mod.apiPDU.set_error_index(rsp_pdu, min(index, len(reqs)))
        p_mod.apiPDU.set_varbinds(rsp_pdu, reqs)  # error responses echo the request's varbinds
        return bytes(encoder.encode(rsp))

    @staticmethod
    def _bulk(pdu: Any, oids: list[Oid], view: _View, budget: int) -> list[tuple[Oid, Any]]:
        n = min(max(int(_v2c.apiBulkPDU.get_non_repeaters(pdu)), 0), len(oids))
        reps = max(int(_v2c.apiBulkPDU.get_max_repetitions(pdu)), 0)
        out = [view.next(o) for o in oids[:n]]
        used = sum(map(_size, out))
        cursors = oids[n:]
        for _ in range(reps if cursors else 0):
            row = [view.next(o) for o in cursors]
            row_size = sum(map(_size, row))
            # Truncate at whole rows: clients (pysnmp included) discard a ragged last row anyway.
            if used + row_size > budget:
                break
            out += row
            used += row_size
            cursors = [o for o, _ in row]
            if all(_is_exception(v) for _, v in row):
                break
        return out


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: SimulatedAgent) -> None:
        self._agent = agent
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport; cast, not check.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            reply = self._agent._handle(data)
        except Exception:  # an exception here would only be logged by asyncio, never seen
            log.exception("simulated agent dropped a datagram")
            return
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
