"""Lean SNMP v2c codec for the poller's hot path: one GetRequest encoder, one GetResponse decoder.

pysnmp/pyasn1 spend about a millisecond on a 17-varbind GET; this module does the same work in
about 15 microseconds by handling exactly the subset a v2c GET needs and nothing else:

* ``GetRequestTemplate`` encodes a request for a fixed community and OID list once; ``encode``
  only splices a 4-byte request id into the pre-encoded bytes.
* ``decode_response`` accepts ``SEQUENCE { INTEGER 1, OCTET STRING, GetResponse-PDU }`` with
  definite lengths and returns plain Python values. Anything else raises ``CodecError`` (never
  another exception type) whose message names the problem and its byte offset. Decoded OID
  strings are memoised by their encoded bytes (bounded), as a poller sees the same OIDs each time.

Reference semantics are pyasn1's BER decoder with pysnmp 7.1's v2c ``Message`` spec plus the
``api.v2c`` accessors (tests/unit/test_snmp_codec.py, bench/fuzz_snmp_codec.py): every packet
accepted here decodes to the same values there, and every packet pysnmp rejects is rejected here
-- including an error-index past the last varbind, which ``apiPDU.get_error_index`` refuses
(pysnmp's v3arch hlapi instead clamps it). Packets pysnmp accepts but this decoder rejects on
purpose, each with a distinct ``CodecError.what``:

* ``trailing bytes after message``; ``unsupported SNMP version`` (only v2c = 1);
  ``not a GetResponse PDU`` (GetRequest, Report, ... decode fine in pysnmp).
* ``indefinite length`` and ``length field longer than 4 bytes``.
* ``high-tag-number form`` (e.g. 0x1F 0x02 for INTEGER) and ``constructed encoding`` of strings
  (OCTET STRING, IpAddress, Opaque or community as 0x24/0x60/0x64 segments).
* ``empty INTEGER`` (X.690 8.3.1 requires a content octet; pyasn1 reads it as 0).
* ``error-status outside 0..18`` (RFC 3416 enumerates 0..18; pysnmp takes any integer).
* ``OID sub-identifier exceeds 2**32-1`` and ``OID has more than 128 sub-identifiers``
  (RFC 2578 3.5 limits; pyasn1 has neither).

Non-minimal (but definite, at most 4-byte) lengths and non-minimal INTEGER contents such as
``41 05 00 00 00 00 07`` are accepted, with the same value pyasn1 gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CodecError",
    "GetBulkRequestTemplate",
    "GetRequestTemplate",
    "RawValue",
    "Response",
    "decode_response",
]

RawValue = int | str | bytes

_MAX_REQUEST_ID = 2**31 - 1
_MAX_SUBID = 2**32 - 1
_MAX_OID_ARCS = 128
_MAX_OCTET_STRING = 65535  # rfc1902.OctetString SIZE (0..65535); Opaque and community are unbounded
_MAX_ERROR_STATUS = 18  # inconsistentName, RFC 3416

# Universal / application / context tags this codec knows, as whole identifier octets.
_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_NULL = 0x05
_OID = 0x06
_IPADDRESS = 0x40
_COUNTER32 = 0x41
_GAUGE32 = 0x42
_TIMETICKS = 0x43
_OPAQUE = 0x44
_COUNTER64 = 0x46
_NO_SUCH_OBJECT = 0x80
_NO_SUCH_INSTANCE = 0x81
_END_OF_MIB_VIEW = 0x82
_GET_REQUEST = 0xA0
_GET_RESPONSE = 0xA2
_GET_BULK_REQUEST = 0xA5

_TAG_NAMES = {
    _SEQUENCE: "SEQUENCE",
    _INTEGER: "INTEGER",
    _OCTET_STRING: "OCTET STRING",
    _OID: "OBJECT IDENTIFIER",
    _GET_REQUEST: "GetRequest-PDU",
    _GET_RESPONSE: "GetResponse-PDU",
    0xA6: "InformRequest-PDU",
    0xA7: "SNMPv2-Trap-PDU",
    0xA8: "Report-PDU",
}
_STRING_TAGS = frozenset({_OCTET_STRING, _IPADDRESS, _OPAQUE})
_UNSIGNED32_TAGS = frozenset({_COUNTER32, _GAUGE32, _TIMETICKS})
_NULL_TAGS = frozenset({_NULL, _NO_SUCH_OBJECT, _NO_SUCH_INSTANCE, _END_OF_MIB_VIEW})
_VALUE_TAGS = frozenset(
    {_INTEGER, _OCTET_STRING, _OID, _COUNTER64, _IPADDRESS, _OPAQUE} | _UNSIGNED32_TAGS | _NULL_TAGS
)
_PDU_TAGS = frozenset({0xA0, 0xA1, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8})


class CodecError(ValueError):
    """A packet is not a well-formed SNMP v2c GetResponse in the supported subset.

    ``what`` names the problem, ``offset`` is the byte offset in the packet where it was found.
    """

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} at byte {offset}")
        self.what = what
        self.offset = offset

    def __reduce__(self) -> tuple[type[CodecError], tuple[str, int]]:
        return (CodecError, (self.what, self.offset))


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    error_status: int
    error_index: int
    # None for noSuchObject / noSuchInstance / endOfMibView (and NULL)
    varbinds: list[tuple[str, RawValue | None]]
    # As the agent sent it: the client compares it with the request's (not part of equality,
    # so that responses compare by what they say).
    community: bytes = field(default=b"", compare=False)


# --------------------------------------------------------------------------------------- encoding


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _encode_length(len(content)) + content


def _encode_int(value: int, tag: int = _INTEGER) -> bytes:
    """An INTEGER (or, with `tag`, a Counter32 / TimeTicks …) in its shortest two's-complement
    form: a leading zero octet where the top bit would otherwise read as a sign."""
    return _tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _encode_oid(oid: str) -> bytes:
    text = oid[1:] if oid.startswith(".") else oid
    parts = text.split(".")
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"OID {oid!r} is not dotted decimal")
    arcs = [int(p) for p in parts]
    if not 2 <= len(arcs) <= _MAX_OID_ARCS:
        raise ValueError(f"OID {oid!r} must have 2..{_MAX_OID_ARCS} sub-identifiers")
    if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or max(arcs) > _MAX_SUBID:
        raise ValueError(f"OID {oid!r} has an out-of-range sub-identifier")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_OID, bytes(out))


class GetRequestTemplate:
    """A v2c GetRequest for fixed community + OIDs, encoded once; only the request id changes."""

    __slots__ = ("_prefix", "_suffix", "community", "oids")

    _PDU_TAG = _GET_REQUEST

    def __init__(self, community: bytes, oids: Sequence[str]) -> None:
        self._build(community, oids, 0, 0)

    def _build(self, community: bytes, oids: Sequence[str], second: int, third: int) -> None:
        """`second`/`third`: error-status/error-index (0, 0) in a GET; non-repeaters and
        max-repetitions in a GETBULK (RFC 3416 gives both PDUs the same layout)."""
        if isinstance(oids, str):
            raise TypeError("oids must be a sequence of OID strings, not one string")
        if not (0 <= second <= 127 and 0 <= third <= 127):
            raise ValueError("non-repeaters and max-repetitions must be 0..127")
        self.community = bytes(community)
        self.oids: tuple[str, ...] = tuple(oids)
        varbinds = b"".join(_tlv(_SEQUENCE, _encode_oid(o) + b"\x05\x00") for o in self.oids)
        # request-id is always a 4-byte INTEGER so every id fits the same slot.
        pdu = b"\x02\x04\x00\x00\x00\x00" + bytes((2, 1, second, 2, 1, third)) + _tlv(_SEQUENCE, varbinds)
        message = _tlv(
            _SEQUENCE, b"\x02\x01\x01" + _tlv(_OCTET_STRING, self.community) + _tlv(self._PDU_TAG, pdu)
        )
        slot = len(message) - len(pdu) + 2  # content of the request-id INTEGER
        self._prefix = message[:slot]
        self._suffix = message[slot + 4 :]

    def encode(self, request_id: int) -> bytes:
        if not 0 <= request_id <= _MAX_REQUEST_ID:
            raise ValueError(f"request id {request_id} outside 0..{_MAX_REQUEST_ID}")
        return self._prefix + request_id.to_bytes(4, "big") + self._suffix


class GetBulkRequestTemplate(GetRequestTemplate):
    """A v2c GetBulkRequest (no non-repeaters) walking `oids` for up to `max_repetitions` rows."""

    _PDU_TAG = _GET_BULK_REQUEST

    def __init__(self, community: bytes, oids: Sequence[str], max_repetitions: int) -> None:
        self._build(community, oids, 0, max_repetitions)


# --------------------------------------------------------------------------------------- decoding


def _tag_error(tag: int, offset: int, expected: str) -> CodecError:
    if tag & 0x1F == 0x1F:
        return CodecError(f"high-tag-number form tag 0x{tag:02x} (expected {expected})", offset)
    if tag & 0x20 and (tag & ~0x20) in _STRING_TAGS:
        return CodecError(f"constructed encoding tag 0x{tag:02x} (expected {expected})", offset)
    return CodecError(f"unexpected tag 0x{tag:02x} (expected {expected})", offset)


def _long_length(buf: bytes, pos: int, first: int, end: int) -> tuple[int, int]:
    """Long-form length whose first octet ``first`` sat at ``pos - 1``: (content start, length)."""
    k = first & 0x7F
    if k == 0:
        raise CodecError("indefinite length", pos - 1)
    if k > 4:
        raise CodecError("length field longer than 4 bytes", pos - 1)
    if pos + k > end:
        raise CodecError("truncated length field", pos - 1)
    return pos + k, int.from_bytes(buf[pos : pos + k], "big")


def _header(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Check a TLV of ``tag`` at ``pos`` fits before ``end``: (content start, content end)."""
    if pos + 2 > end:
        raise CodecError(f"truncated {_TAG_NAMES[tag]} header", pos)
    if buf[pos] != tag:
        raise _tag_error(buf[pos], pos, _TAG_NAMES[tag])
    n = buf[pos + 1]
    start = pos + 2
    if n >= 0x80:
        start, n = _long_length(buf, start, n, end)
    if start + n > end:
        raise CodecError(f"{_TAG_NAMES[tag]} length {n} overruns its container", pos)
    return start, start + n


def _integer(buf: bytes, start: int, end: int, pos: int) -> int:
    if end - start == 1:
        v = buf[start]
        return v - 256 if v > 0x7F else v
    if end == start:
        raise CodecError("empty INTEGER", pos)
    return int.from_bytes(buf[start:end], "big", signed=True)


_oid_cache: dict[bytes, str] = {}
_OID_CACHE_MAX = 4096


def _oid_text(content: bytes, pos: int) -> str:
    """Dotted text of OBJECT IDENTIFIER contents; ``pos`` is the TLV's offset, for errors."""
    if not content:
        raise CodecError("empty OBJECT IDENTIFIER", pos)
    if content.isascii() and len(content) < _MAX_OID_ARCS:  # one octet per sub-identifier
        first = content[0]
        head = f"{first // 40}.{first % 40}" if first < 80 else f"2.{first - 80}"
        return ".".join([head, *map(str, content[1:])])
    arcs: list[int] = []
    value = 0  # sub-identifier so far, shifted; 0 only at a sub-identifier's first octet
    for b in content:
        if b < 0x80:
            arcs.append(value | b)
            value = 0
        elif value == 0 and b == 0x80:
            raise CodecError("OID sub-identifier with leading 0x80 octet", pos)
        else:
            value = (value | (b & 0x7F)) << 7
            if value >= 1 << 35:  # a fifth continuation octet: over any legal sub-identifier
                raise CodecError("OID sub-identifier exceeds 2**32-1", pos)
    if value:
        raise CodecError("truncated OID sub-identifier", pos)
    first = arcs[0]
    if first < 80:
        arcs[0] = first % 40
        arcs.insert(0, first // 40)
    else:
        arcs[0] = first - 80
        arcs.insert(0, 2)
    if len(arcs) > _MAX_OID_ARCS:
        raise CodecError("OID has more than 128 sub-identifiers", pos)
    if max(arcs) > _MAX_SUBID:
        raise CodecError("OID sub-identifier exceeds 2**32-1", pos)
    return ".".join(map(str, arcs))


def _oid(buf: bytes, start: int, end: int, pos: int) -> str:
    key = buf[start:end]
    text = _oid_cache.get(key)
    if text is None:
        text = _oid_text(key, pos)
        if len(_oid_cache) >= _OID_CACHE_MAX:
            _oid_cache.clear()
        _oid_cache[key] = text
    return text


def _value(buf: bytes, tag: int, start: int, end: int, pos: int) -> RawValue | None:
    """Decode one varbind value with identifier octet ``tag`` at ``pos``."""
    if tag == _INTEGER:
        v = _integer(buf, start, end, pos)
        if not -(2**31) <= v < 2**31:
            raise CodecError("Integer32 out of range", pos)
        return v
    if tag in _UNSIGNED32_TAGS:
        v = _integer(buf, start, end, pos)
        if not 0 <= v <= 0xFFFFFFFF:
            raise CodecError(f"unsigned 32-bit value (tag 0x{tag:02x}) out of range", pos)
        return v
    if tag == _OCTET_STRING:
        if end - start > _MAX_OCTET_STRING:
            raise CodecError("OCTET STRING longer than 65535 bytes", pos)
        return buf[start:end]
    if tag in _NULL_TAGS:
        if end != start:
            raise CodecError(f"non-empty NULL or exception value (tag 0x{tag:02x})", pos)
        return None
    if tag == _OID:
        return _oid(buf, start, end, pos)
    if tag == _COUNTER64:
        v = _integer(buf, start, end, pos)
        if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
            raise CodecError("Counter64 out of range", pos)
        return v
    if tag == _IPADDRESS:
        if end - start != 4:
            raise CodecError(f"IpAddress of {end - start} bytes, not 4", pos)
        return f"{buf[start]}.{buf[start + 1]}.{buf[start + 2]}.{buf[start + 3]}"
    if tag == _OPAQUE:
        return buf[start:end]
    raise _tag_error(tag, pos, "a varbind value type")


_SNMPV2_TRAP = 0xA7
_INFORM_REQUEST = 0xA6
_NOTIFICATIONS = frozenset({_SNMPV2_TRAP, _INFORM_REQUEST})


@dataclass(frozen=True, slots=True)
class Notification:
    """A v2c SNMPv2-Trap or InformRequest. `response` is the Response-PDU that acknowledges
    an inform (RFC 3416 4.2.7: the same request-id and variable-bindings), None for a trap."""

    inform: bool
    community: bytes
    request_id: int
    varbinds: list[tuple[str, RawValue | None]]
    response: bytes | None


def decode_notification(packet: bytes) -> Notification:
    """Decode a v2c trap or inform. Raises only CodecError."""
    buf = packet if type(packet) is bytes else bytes(packet)
    answer, tag, tag_at = _decode(buf, None, _NOTIFICATIONS)
    if answer.error_status or answer.error_index:
        raise CodecError("a notification's error-status and error-index must be 0", tag_at)
    response = buf[:tag_at] + bytes([_GET_RESPONSE]) + buf[tag_at + 1 :] if tag == _INFORM_REQUEST else None
    return Notification(
        tag == _INFORM_REQUEST, answer.community, answer.request_id, answer.varbinds, response
    )


def decode_response(packet: bytes, community: bytes | None = None) -> Response:
    """Decode a v2c GetResponse; ``community``, if given, must match. Raises only CodecError."""
    buf = packet if type(packet) is bytes else bytes(packet)  # bytearray/memoryview: slice to bytes
    return _decode(buf, community, None)[0]


def _decode(buf: bytes, community: bytes | None, accept: frozenset[int] | None) -> tuple[Response, int, int]:
    """The message, its PDU tag and where that tag is. `accept`: the PDU tags taken (None:
    a GetResponse only)."""
    total = len(buf)
    start, end = _header(buf, 0, total, _SEQUENCE)
    if end != total:
        raise CodecError("trailing bytes after message", end)

    pos = start
    start, vend = _header(buf, pos, end, _INTEGER)
    if _integer(buf, start, vend, pos) != 1:
        raise CodecError("unsupported SNMP version (only v2c = 1)", pos)

    pos = vend
    start, cend = _header(buf, pos, end, _OCTET_STRING)
    sent_community = buf[start:cend]
    if community is not None and sent_community != community:
        raise CodecError("community mismatch", pos)

    tag_at = pos = cend
    if accept is None:
        if pos < end and buf[pos] in _PDU_TAGS:
            raise CodecError(f"not a GetResponse PDU (tag 0x{buf[pos]:02x})", pos)
        pdu_tag = _GET_RESPONSE
    else:
        pdu_tag = buf[pos] if pos < end else -1
        if pdu_tag not in accept:
            raise CodecError(f"not an SNMPv2-Trap or InformRequest PDU (tag 0x{max(pdu_tag, 0):02x})", pos)
    start, pdu_end = _header(buf, pos, end, pdu_tag)
    if pdu_end != end:
        raise CodecError("unexpected bytes after PDU", pdu_end)

    pos = start
    start, vend = _header(buf, pos, pdu_end, _INTEGER)
    request_id = _integer(buf, start, vend, pos)
    if not -(2**31) <= request_id < 2**31:
        raise CodecError("request-id out of Integer32 range", pos)

    pos = vend
    start, vend = _header(buf, pos, pdu_end, _INTEGER)
    error_status = _integer(buf, start, vend, pos)
    if not 0 <= error_status <= _MAX_ERROR_STATUS:
        raise CodecError("error-status outside 0..18", pos)

    error_index_at = pos = vend
    start, vend = _header(buf, pos, pdu_end, _INTEGER)
    error_index = _integer(buf, start, vend, pos)
    if error_index < 0:
        raise CodecError("negative error-index", pos)

    pos = vend
    pos, list_end = _header(buf, pos, pdu_end, _SEQUENCE)
    if list_end != pdu_end:
        raise CodecError("unexpected bytes after variable-bindings", list_end)

    varbinds: list[tuple[str, RawValue | None]] = []
    append = varbinds.append
    cached_oid = _oid_cache.get
    from_bytes = int.from_bytes
    unsigned32 = _UNSIGNED32_TAGS
    value_tags = _VALUE_TAGS
    # The loop spells tags as literals (0x30 SEQUENCE, 0x06 OID, 0x02 INTEGER): it is the hot path.
    while pos < list_end:
        # VarBind SEQUENCE
        if pos + 2 > list_end:
            raise CodecError("truncated VarBind header", pos)
        if buf[pos] != 0x30:
            raise _tag_error(buf[pos], pos, "VarBind SEQUENCE")
        n = buf[pos + 1]
        vb = pos + 2
        if n > 0x7F:
            vb, n = _long_length(buf, vb, n, list_end)
        vb_end = vb + n
        if vb_end > list_end:
            raise CodecError(f"VarBind length {n} overruns variable-bindings", pos)

        # name: OBJECT IDENTIFIER
        if vb + 2 > vb_end:
            raise CodecError("truncated VarBind name", vb)
        if buf[vb] != 0x06:
            raise _tag_error(buf[vb], vb, "OBJECT IDENTIFIER")
        n = buf[vb + 1]
        start = vb + 2
        if n > 0x7F:
            start, n = _long_length(buf, start, n, vb_end)
        pos = start + n
        if pos > vb_end:
            raise CodecError(f"OBJECT IDENTIFIER length {n} overruns its VarBind", vb)
        name = cached_oid(buf[start:pos])
        if name is None:
            name = _oid(buf, start, pos, vb)

        # value: any known tag
        if pos + 2 > vb_end:
            raise CodecError("truncated VarBind value", pos)
        tag = buf[pos]
        if tag not in value_tags:  # before the length: a high-tag-number form's next octet is tag
            raise _tag_error(tag, pos, "a varbind value type")
        n = buf[pos + 1]
        start = pos + 2
        if n > 0x7F:
            start, n = _long_length(buf, start, n, vb_end)
        if start + n != vb_end:
            if start + n > vb_end:
                raise CodecError(f"value length {n} overruns its VarBind", pos)
            raise CodecError("unexpected bytes after VarBind value", start + n)
        if tag in unsigned32 and 0 < n < 6 and (buf[start] == 0 or (n < 5 and buf[start] < 0x80)):
            append((name, from_bytes(buf[start:vb_end])))  # non-negative and below 2**32
        elif tag == 0x02 and n == 1:
            v = buf[start]
            append((name, v - 256 if v > 0x7F else v))
        else:
            append((name, _value(buf, tag, start, vb_end, pos)))
        pos = vb_end

    if error_index > len(varbinds):
        raise CodecError("error-index exceeds the number of varbinds", error_index_at)
    return Response(request_id, error_status, error_index, varbinds, sent_community), pdu_tag, tag_at
