"""collector.sources.snmp.codec, cross-checked against pysnmp 7.1 / pyasn1 as the reference.

The oracle (``pysnmp_decode``), the valid-packet generator and the mutation engine live here and
are reused by bench/fuzz_snmp_codec.py, so the fuzzer and this suite judge packets the same way.

Agreement rule (``cross_check``): for any bytes, either both decoders accept and give identical
values (types included), or both reject, or only the codec rejects for one of the documented
subset limits in ``CODEC_ONLY`` -- and then the packet is verified to really have that property
(pysnmp's own view of it, or the bytes at the error offset). Anything else is a mismatch; any
exception from decode_response other than CodecError is a crash.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import api

from collector.sim.snmp_agent import SimulatedAgent, TypedValue
from collector.sources.snmp.codec import (
    CodecError,
    GetRequestTemplate,
    RawValue,
    Response,
    decode_response,
)
from collector.sources.snmp.pysnmp_getter import SnmpError, to_raw

v2c = api.v2c
U32 = 2**32 - 1
U64 = 2**64 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# ------------------------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class Reference:
    """What pysnmp makes of a packet it accepts (before the subset's semantic checks)."""

    version: int
    community: bytes
    pdu_type: str
    rest: bytes
    request_id: int = 0
    error_status: int = 0
    error_index: int = 0
    varbinds: list[tuple[str, RawValue | None]] = field(default_factory=list)
    oids: list[tuple[int, ...]] = field(default_factory=list)  # every OID: names and values

    def response(self) -> Response:
        return Response(self.request_id, self.error_status, self.error_index, self.varbinds)


def pysnmp_decode(packet: bytes) -> Reference | None:
    """pyasn1's BER decoder with pysnmp's v2c Message spec, read through pysnmp's api.v2c
    accessors (get_error_index refuses an index past the last varbind); None if either rejects."""
    try:
        msg, rest = decoder.decode(packet, asn1Spec=v2c.Message())
        version = int(v2c.apiMessage.get_version(msg))
        community = bytes(v2c.apiMessage.get_community(msg))
        pdu = v2c.apiMessage.get_pdu(msg)
        pdu_type = type(pdu).__name__
        if pdu.tagSet != v2c.ResponsePDU.tagSet:
            return Reference(version, community, pdu_type, bytes(rest))
        binds = v2c.apiPDU.get_varbinds(pdu)
        oids = [o.asTuple() for o, _ in binds]
        oids += [v.asTuple() for _, v in binds if isinstance(v, univ.ObjectIdentifier)]
        return Reference(
            version,
            community,
            pdu_type,
            bytes(rest),
            int(v2c.apiPDU.get_request_id(pdu)),
            int(v2c.apiPDU.get_error_status(pdu)),
            int(v2c.apiPDU.get_error_index(pdu)),
            [(".".join(map(str, o.asTuple())), to_raw(v)) for o, v in binds],
            oids,
        )
    except (AssertionError, SnmpError):  # SnmpError: a value type the poller cannot convert
        raise
    except Exception:  # PyAsn1Error, pysnmp's ProtocolError (bad IpAddress), ...: all "rejected"
        return None


def _length_at(packet: bytes, offset: int) -> int | None:
    """A definite BER length field at ``offset`` (None if malformed)."""
    if offset >= len(packet):
        return None
    first = packet[offset]
    if first < 0x80:
        return first
    size = first & 0x7F
    if size == 0 or offset + 1 + size > len(packet):
        return None
    return int.from_bytes(packet[offset + 1 : offset + 1 + size], "big")


def _smi_violation(ref: Reference) -> bool:
    return any(len(o) > 128 or max(o) > U32 for o in ref.oids)


# Packets pysnmp accepts but the codec rejects on purpose. Each reason comes with a check that
# the packet really is outside the subset for that reason, so a codec bug cannot hide behind it.
CODEC_ONLY: dict[str, Callable[[bytes, CodecError, Reference], bool]] = {
    "trailing bytes after message": lambda p, e, r: r.rest != b"",
    "unsupported SNMP version": lambda p, e, r: r.version != 1,
    "not a GetResponse PDU": lambda p, e, r: r.pdu_type != "ResponsePDU",
    "error-status outside 0..18": lambda p, e, r: not 0 <= r.error_status <= 18,
    "OID sub-identifier exceeds 2**32-1": lambda p, e, r: _smi_violation(r),
    "OID has more than 128 sub-identifiers": lambda p, e, r: _smi_violation(r),
    "indefinite length": lambda p, e, r: p[e.offset] == 0x80,
    "length field longer than 4 bytes": lambda p, e, r: p[e.offset] > 0x84,
    "high-tag-number form": lambda p, e, r: p[e.offset] & 0x1F == 0x1F,
    "constructed encoding": lambda p, e, r: p[e.offset] in (0x24, 0x60, 0x64),
    "empty INTEGER": lambda p, e, r: (
        p[e.offset] in (0x02, 0x41, 0x42, 0x43, 0x46) and _length_at(p, e.offset + 1) == 0
    ),
}


@dataclass(frozen=True)
class Outcome:
    kind: str  # "identical" | "rejected-both" | "codec-only" | "mismatch" | "crash"
    detail: str = ""


def cross_check(packet: bytes) -> Outcome:
    ref = pysnmp_decode(packet)
    try:
        got = decode_response(packet)
    except CodecError as err:
        if ref is None:
            return Outcome("rejected-both")
        reason = next((r for r in CODEC_ONLY if err.what.startswith(r)), None)
        if reason is not None and CODEC_ONLY[reason](packet, err, ref):
            return Outcome("codec-only", reason)
        return Outcome("mismatch", f"codec rejected ({err}) but pysnmp accepted {ref}")
    except Exception as exc:
        return Outcome("crash", f"{type(exc).__name__}: {exc}")
    if ref is None:
        return Outcome("mismatch", f"codec accepted {got} but pysnmp rejected")
    if (ref.version, ref.pdu_type, ref.rest) != (1, "ResponsePDU", b""):
        return Outcome("mismatch", f"codec accepted {got} but pysnmp saw {ref}")
    expected = ref.response()
    typed = [(o, type(v), v) for o, v in got.varbinds] == [(o, type(v), v) for o, v in expected.varbinds]
    if got != expected or not typed:
        return Outcome("mismatch", f"codec {got} != pysnmp {expected}")
    return Outcome("identical")


def assert_agrees(packet: bytes) -> Outcome:
    outcome = cross_check(packet)
    assert outcome.kind not in ("mismatch", "crash"), (packet.hex(), outcome)
    return outcome


# ------------------------------------------------------------------------------ packet builders


def encode_response(
    varbinds: list[tuple[tuple[int, ...], Any]],
    request_id: int = 1234,
    error_status: int = 0,
    error_index: int = 0,
    community: bytes = b"public",
) -> bytes:
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_error_status(pdu, error_status)
    v2c.apiPDU.set_error_index(pdu, error_index)
    v2c.apiPDU.set_varbinds(pdu, varbinds)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def tlv(tag: int | bytes, content: bytes, length: bytes | None = None) -> bytes:
    ident = bytes((tag,)) if isinstance(tag, int) else tag
    if length is None:
        n = len(content)
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes((n,)) if n < 0x80 else bytes((0x80 | len(body),)) + body
    return ident + length + content


def raw_response(
    varbinds: list[bytes],
    version: bytes = b"\x02\x01\x01",
    community: bytes = b"\x04\x06public",
    header: bytes = b"\x02\x01\x05\x02\x01\x00\x02\x01\x00",
    pdu_tag: int = 0xA2,
) -> bytes:
    """A response assembled from raw BER pieces, to reach encodings pysnmp's encoder never makes."""
    return tlv(0x30, version + community + tlv(pdu_tag, header + tlv(0x30, b"".join(varbinds))))


OID_1361 = bytes.fromhex("06032b0601")  # 1.3.6.1


def vb(value: bytes, name: bytes = OID_1361) -> bytes:
    return tlv(0x30, name + value)


# ---------------------------------------------------------------------- random valid responses

EDGES_U32 = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**24, I32_MAX, 2**31, U32 - 1, U32]


def _pick(rng: random.Random, lo: int, hi: int, edges: list[int]) -> int:
    if lo == hi:
        return lo
    if rng.random() < 0.35:
        return rng.choice([e for e in [lo, hi, *edges] if lo <= e <= hi])
    if rng.random() < 0.5:  # log-uniform: small and large values both common
        return min(hi, lo + rng.getrandbits(rng.randrange(1, (hi - lo).bit_length() + 1)))
    return rng.randint(lo, hi)


def random_oid(rng: random.Random) -> tuple[int, ...]:
    first = rng.choice([1, 1, 1, 0, 2])
    second = rng.randrange(40) if first < 2 else _pick(rng, 0, U32, EDGES_U32)
    count = rng.choice([0, 1, 2, 4, 7, 10, 12, 20, 126])
    return (first, second, *(_pick(rng, 0, U32, EDGES_U32) for _ in range(count)))


def _random_bytes(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 4, 6, 20, 127, 128, 255, 256, 300, rng.randrange(600)])
    return rng.randbytes(n)


def random_value(rng: random.Random) -> Any:
    kind = rng.randrange(13)
    if kind == 0:
        return v2c.Integer32(_pick(rng, I32_MIN, I32_MAX, [-1, 0, 1, -128, -129, 127, 128]))
    if kind == 1:
        return v2c.OctetString(_random_bytes(rng))
    if kind == 2:
        return v2c.ObjectIdentifier(random_oid(rng))
    if kind == 3:
        return v2c.IpAddress(rng.randbytes(4))
    if kind in (4, 5, 6):
        cls = (v2c.Counter32, v2c.Gauge32, v2c.TimeTicks)[kind - 4]
        return cls(_pick(rng, 0, U32, EDGES_U32))
    if kind == 7:
        return v2c.Counter64(_pick(rng, 0, U64, [*EDGES_U32, 2**32, 2**63 - 1, 2**63, U64 - 1]))
    if kind == 8:
        return v2c.Opaque(_random_bytes(rng))
    return (v2c.NoSuchObject, v2c.NoSuchInstance, v2c.EndOfMibView, v2c.Null)[kind - 9]("")


def random_response(rng: random.Random) -> bytes:
    count = rng.choice([0, 1, 2, 3, 5, 8, 17, 30])
    return encode_response(
        [(random_oid(rng), random_value(rng)) for _ in range(count)],
        request_id=_pick(rng, I32_MIN, I32_MAX, [-1, 0, 1, 2**23, 2**24]),
        error_status=rng.choice([0, 0, 0, 1, 2, 5, 18]),
        error_index=_pick(rng, 0, count, [0, 1]),
        community=rng.choice([b"public", b"", b"sim-community", rng.randbytes(rng.randrange(300))]),
    )


# ------------------------------------------------------------------------------------ mutations


@dataclass
class Node:
    """One TLV of a packet: identifier octets, then children (constructed) or content."""

    tag: bytes
    content: bytes = b""
    children: list[Node] | None = None


def parse_tree(packet: bytes) -> Node:
    """Parse a well-formed, definite-length packet (one made by pysnmp) into TLV nodes."""

    def parse(pos: int) -> tuple[Node, int]:
        tag = packet[pos]
        n = packet[pos + 1]
        start = pos + 2
        if n & 0x80:
            size = n & 0x7F
            n = int.from_bytes(packet[start : start + size], "big")
            start += size
        end = start + n
        if not tag & 0x20:
            return Node(bytes((tag,)), packet[start:end]), end
        children = []
        while start < end:
            child, start = parse(start)
            children.append(child)
        return Node(bytes((tag,)), children=children), end

    node, end = parse(0)
    assert end == len(packet)
    return node


def minimal_length(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((n,)) if n < 0x80 else bytes((0x80 | len(body),)) + body


def serialize(node: Node, style: Callable[[Node, int], bytes] | None = None) -> bytes:
    kids = node.children
    content = node.content if kids is None else b"".join(serialize(c, style) for c in kids)
    if style is not None:
        encoded = style(node, len(content))
        if encoded == b"\x80":  # indefinite: end-of-contents after the value
            return node.tag + encoded + content + b"\x00\x00"
        return node.tag + encoded + content
    return node.tag + minimal_length(len(content)) + content


def all_nodes(root: Node) -> list[tuple[Node | None, Node]]:
    """(parent, node) for every node."""
    out: list[tuple[Node | None, Node]] = [(None, root)]
    i = 0
    while i < len(out):
        node = out[i][1]
        out += [(node, c) for c in node.children or []]
        i += 1
    return out


def length_fields(packet: bytes) -> list[tuple[int, int, int]]:
    """(offset of length field, its size, encoded length) for the TLVs of a packet, as far as it
    parses as definite-length BER with one-octet tags (all of a pysnmp-made packet)."""
    out: list[tuple[int, int, int]] = []

    def walk(pos: int, end: int) -> None:
        while pos + 1 < end:
            tag = packet[pos]
            n = packet[pos + 1]
            size = 1 + (n & 0x7F if n & 0x80 else 0)
            length = n if size == 1 else int.from_bytes(packet[pos + 2 : pos + 1 + size], "big")
            start = pos + 1 + size
            if n == 0x80 or start + length > end:
                return
            out.append((pos + 1, size, length))
            if tag & 0x20:
                walk(start, start + length)
            pos = start + length

    walk(0, len(packet))
    return out


INTERESTING_CONTENT = [
    b"",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"\xff\xff\xff\xff",
    b"\x00\xff\xff\xff\xff",
    b"\x01\x00\x00\x00\x00",
    b"\x00\x00\x00\x00\x00\x00\x07",
    b"\x80\x00\x00\x00",
    b"\x7f\xff\xff\xff",
    b"\x00" + b"\xff" * 8,
    b"\x01" + b"\x00" * 8,
    b"\xff" * 8,
    b"\x2b\x80\x01",
    b"\x2b\x8f\xff\xff\xff\x7f",
    b"\x2b\x90\x80\x80\x80\x00",
    b"\x88\x80\x80\x80\x4f",
    b"\x2b" * 128,
    b"\x2b\x06\x81",
    b"\x01\x02\x03",
    b"\x01\x02\x03\x04\x05",
]
INTERESTING_TAGS = [
    0x02, 0x04, 0x05, 0x06, 0x10, 0x22, 0x24, 0x25, 0x26, 0x30, 0x40, 0x41, 0x42, 0x43, 0x44,
    0x45, 0x46, 0x47, 0x60, 0x61, 0x64, 0x80, 0x81, 0x82, 0x83, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4,
    0xA5, 0xA6, 0xA7, 0xA8, 0x1F, 0x3F, 0x5F, 0x7F, 0x9F, 0xBF,
]  # fmt: skip


def _odd_length(rng: random.Random, n: int, constructed: bool) -> bytes:
    """A length field for ``n`` that BER permits but is unusual (or outside the codec's subset)."""
    choice = rng.randrange(8)
    if choice == 0 and constructed:
        return b"\x80"  # indefinite
    size = min(4, max(1, (n.bit_length() + 7) // 8) + rng.choice([0, 1, 2, 3]))
    if choice == 1:
        size = rng.choice([5, 6, 8, 9])
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def _mutate_tree(rng: random.Random, packet: bytes) -> tuple[str, bytes]:
    root = parse_tree(packet)
    nodes = all_nodes(root)
    parent, node = rng.choice(nodes)
    kind = rng.randrange(7)
    if kind == 0 and node.children is None:
        node.content = rng.choice(INTERESTING_CONTENT) if rng.random() < 0.6 else _random_bytes(rng)[:9]
        return "content-replace", serialize(root)
    if kind == 1:
        if rng.random() < 0.15:  # high-tag-number form, usually of the same tag
            old = node.tag[0]
            number = old & 0x1F if rng.random() < 0.8 else rng.randrange(0x80)
            node.tag = bytes((old & 0xE0 | 0x1F, number))
        else:
            node.tag = bytes((rng.choice(INTERESTING_TAGS) if rng.random() < 0.7 else rng.randrange(256),))
        if node.tag[0] & 0x20 and node.children is None and node.tag[0] & 0x1F != 0x1F:
            # turn into a constructed string of OCTET STRING segments
            cut = rng.randrange(len(node.content) + 1)
            node.children = [Node(b"\x04", node.content[:cut]), Node(b"\x04", node.content[cut:])]
        return "tag-replace", serialize(root)
    if kind == 2 and parent is not None and parent.children is not None:
        siblings = parent.children
        i = siblings.index(node)
        if rng.random() < 0.5:
            siblings.insert(i, Node(node.tag, node.content, node.children))
        else:
            del siblings[i]
        return "node-dup-delete", serialize(root)
    if kind == 3:
        odd = {id(n) for _, n in nodes if rng.random() < 0.1} | {id(node)}

        def style(n: Node, length: int) -> bytes:
            if id(n) in odd:
                return _odd_length(rng, length, n.children is not None)
            return minimal_length(length)

        return "length-reencode", serialize(root, style)
    if kind == 4 and node.children is None and node.tag[0] in (0x04, 0x40, 0x44):
        cut = rng.randrange(len(node.content) + 1)
        node.tag = bytes((node.tag[0] | 0x20,))
        node.children = [Node(b"\x04", node.content[:cut]), Node(b"\x04", node.content[cut:])]
        return "constructed-string", serialize(root)
    if kind == 5:  # header fields: version, PDU type, error-status
        msg = root.children or []
        pdu = msg[-1] if msg else root
        field = rng.randrange(3)
        if field == 0 and msg:
            msg[0].content = rng.choice([b"\x00", b"\x03", b"\x01", b"", b"\x00\x01", b"\xff"])
        elif field == 1:
            pdu.tag = bytes((rng.choice([0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0x82, 0x30]),))
        elif pdu.children:
            pdu.children[1].content = rng.choice([b"\x00", b"\x12", b"\x13", b"\xff", b"\x7f", b"\x00\x05"])
        return "header-field", serialize(root)
    holder = node if node.children is not None else parent or root
    extra = Node(bytes((rng.choice(INTERESTING_TAGS),)), rng.choice(INTERESTING_CONTENT))
    holder.children = holder.children or []
    holder.children.insert(rng.randrange(len(holder.children) + 1), extra)
    return "node-insert", serialize(root)


def _mutate_bytes(rng: random.Random, packet: bytes) -> tuple[str, bytes]:
    data = bytearray(packet)
    kind = rng.randrange(7)
    if kind == 0 or not data:
        return "truncate", bytes(data[: rng.randrange(len(data) + 1)])
    i = rng.randrange(len(data))
    if kind == 1:
        data[i] = rng.randrange(256)
        return "byte-replace", bytes(data)
    if kind == 2:
        data[i] ^= 1 << rng.randrange(8)
        return "bit-flip", bytes(data)
    if kind == 3:
        data.insert(i, rng.randrange(256))
        return "byte-insert", bytes(data)
    if kind == 4:
        del data[i]
        return "byte-delete", bytes(data)
    if kind == 5:
        return "trailing", bytes(data) + rng.randbytes(rng.randrange(1, 4))
    # oversize length: claim more (or absurdly more) than the TLV holds
    fields = length_fields(packet)
    if not fields:
        return "truncate", bytes(data[:i])
    offset, size, length = rng.choice(fields)
    bigger = length + rng.choice([1, 2, 3, 100, 2**16, 2**31, U32 - length])
    if bigger <= U32:
        body = bigger.to_bytes(max(1, (bigger.bit_length() + 7) // 8), "big")
        new = bytes((bigger,)) if bigger < 0x80 else bytes((0x80 | len(body),)) + body
    else:
        new = b"\x85" + bigger.to_bytes(5, "big")
    if rng.random() < 0.2:
        new = rng.choice([b"\x80", b"\xff", b"\x84\xff\xff\xff\xff", b"\x89" + b"\xff" * 9, b"\x7f"])
    return "length-oversize", bytes(data[:offset] + new + data[offset + size :])


def mutate(rng: random.Random, packet: bytes) -> tuple[str, bytes]:
    """One (sometimes two stacked) structural or byte-level mutation of a valid packet."""
    name, out = _mutate_tree(rng, packet) if rng.random() < 0.5 else _mutate_bytes(rng, packet)
    if rng.random() < 0.15 and out:
        second, out = _mutate_bytes(rng, out)
        name = f"{name}+{second}"
    return name, out


def random_junk(rng: random.Random) -> tuple[str, bytes]:
    """Random bytes; half of them start like an SNMP message so they get past the first TLV."""
    body = rng.randbytes(rng.randrange(120))
    if rng.random() < 0.5:
        return "random-bytes", body
    head = b"\x02\x01\x01" + tlv(0x04, b"public") + bytes((0xA2,)) + minimal_length(len(body))
    return "random-after-header", tlv(0x30, head + body)


# ================================================================================ 1. requests

REQUEST_IDS = [0, 1, 127, 128, 255, 256, 65535, 2**23 - 1, 2**23, 2**24, 0x12345678, I32_MAX]
OID_LISTS = [
    ["1.3.6.1.2.1.1.1.0"],
    [f"1.3.6.1.2.1.1.{i}.0" for i in range(1, 8)] + [f"1.3.6.1.2.1.2.2.1.{i}.1" for i in range(1, 11)],
    [".1.3.6.1.2.1.1.3.0", "0.0", "1.39", "2.999.4294967295", "1.3.6.1.4.1.4294967295.0.128.16383"],
    ["1.3.6.1.4.1.99999." + ".".join(["4294967295"] * 100)],  # long OID: multi-byte lengths
    [f"1.3.6.1.4.1.99999.2.{i}" for i in range(60)],  # > 255-byte varbind list
    [],
]


def pysnmp_request(community: bytes, oids: list[str], request_id: int) -> bytes:
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, [(o.lstrip("."), v2c.null) for o in oids])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize("oids", OID_LISTS, ids=lambda o: f"{len(o)}oids")
@pytest.mark.parametrize("community", [b"public", b"", b"x" * 200])
def test_request_decodes_in_pysnmp(oids: list[str], community: bytes) -> None:
    template = GetRequestTemplate(community, oids)
    for rid in REQUEST_IDS:
        wire = template.encode(rid)
        msg, rest = decoder.decode(wire, asn1Spec=v2c.Message())
        assert rest == b""
        assert int(v2c.apiMessage.get_version(msg)) == 1
        assert bytes(v2c.apiMessage.get_community(msg)) == community
        pdu = v2c.apiMessage.get_pdu(msg)
        assert pdu.tagSet == v2c.GetRequestPDU.tagSet
        assert int(v2c.apiPDU.get_request_id(pdu)) == rid
        assert (int(v2c.apiPDU.get_error_status(pdu)), int(v2c.apiPDU.get_error_index(pdu))) == (0, 0)
        binds = v2c.apiPDU.get_varbinds(pdu)
        assert [str(o) for o, _ in binds] == [o.lstrip(".") for o in oids]
        assert all(type(v) is univ.Null for _, v in binds)
        # the request id is always a 4-byte INTEGER; where that is also the minimal encoding,
        # the whole message is byte-identical to pysnmp's own
        assert b"\x02\x04" + rid.to_bytes(4, "big") in wire
        if rid >= 2**23:
            assert wire == pysnmp_request(community, oids, rid)


def test_request_only_the_id_bytes_change() -> None:
    template = GetRequestTemplate(b"public", OID_LISTS[1])
    a, b = template.encode(1), template.encode(I32_MAX)
    assert len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    assert diff == list(range(diff[0], diff[0] + 4))
    assert a[diff[0] - 2 : diff[0] + 4] == b"\x02\x04\x00\x00\x00\x01"
    assert b[diff[0] - 2 : diff[0] + 4] == b"\x02\x04\x7f\xff\xff\xff"


@pytest.mark.parametrize(
    "oid", ["", "1", "3.1", "1.40", "1.3.-1", "1.3.x", "1.3.4294967296", "1..3", "1.3.", "1.3.٣"]
)
def test_request_rejects_bad_oids(oid: str) -> None:
    with pytest.raises(ValueError):
        GetRequestTemplate(b"public", [oid])


def test_request_rejects_bad_ids_and_shapes() -> None:
    template = GetRequestTemplate(b"public", ["1.3.6.1.2.1.1.3.0"])
    for rid in (-1, 2**31, 2**32, -(2**31)):
        with pytest.raises(ValueError):
            template.encode(rid)
    with pytest.raises(ValueError):
        GetRequestTemplate(b"public", ["1.3" + ".1" * 127])  # 129 sub-identifiers
    with pytest.raises(TypeError):
        GetRequestTemplate(b"public", "1.3.6.1.2.1.1.3.0")


AGENT_COMMUNITY = "sim-community"
SYS = "1.3.6.1.2.1.1"
AGENT_VALUES: dict[str, TypedValue] = {
    f"{SYS}.1.0": TypedValue("octets", "HookSim ATA 1.0"),
    f"{SYS}.2.0": TypedValue("oid", "1.3.6.1.4.1.99999.1"),
    f"{SYS}.3.0": TypedValue("timeticks", 12345),
    f"{SYS}.4.0": TypedValue("octets", "é" * 150),  # 300 bytes: two-byte length
    f"{SYS}.5.0": TypedValue("octets", b""),
    f"{SYS}.9.0": TypedValue("integer", I32_MIN),
    f"{SYS}.10.0": TypedValue("integer", I32_MAX),
    "1.3.6.1.2.1.2.2.1.5.1": TypedValue("gauge", U32),
    "1.3.6.1.2.1.2.2.1.6.1": TypedValue("octets", b"\x00\x1a\x2b\x3c\x4d\x5e"),
    "1.3.6.1.2.1.2.2.1.10.1": TypedValue("counter32", 2**32 + 5),  # wraps to 5
    "1.3.6.1.2.1.2.2.1.16.1": TypedValue("counter32", U32),
    "1.3.6.1.2.1.4.20.1.1.10.0.0.5": TypedValue("ipaddress", "10.0.0.5"),
    "1.3.6.1.2.1.31.1.1.1.6.1": TypedValue("counter64", U64),
    "1.3.6.1.2.1.31.1.1.1.10.1": TypedValue("counter64", 0),
    "1.3.6.1.4.1.99999.4294967295.1": TypedValue("oid", "2.999.4294967295"),
    "1.3.6.1.4.1.99999.7.0": TypedValue("integer", 0),
}
EXPECTED: dict[str, RawValue | None] = {
    f"{SYS}.1.0": b"HookSim ATA 1.0",
    f"{SYS}.2.0": "1.3.6.1.4.1.99999.1",
    f"{SYS}.3.0": 12345,
    f"{SYS}.4.0": ("é" * 150).encode(),
    f"{SYS}.5.0": b"",
    f"{SYS}.9.0": I32_MIN,
    f"{SYS}.10.0": I32_MAX,
    "1.3.6.1.2.1.2.2.1.5.1": U32,
    "1.3.6.1.2.1.2.2.1.6.1": b"\x00\x1a\x2b\x3c\x4d\x5e",
    "1.3.6.1.2.1.2.2.1.10.1": 5,
    "1.3.6.1.2.1.2.2.1.16.1": U32,
    "1.3.6.1.2.1.4.20.1.1.10.0.0.5": "10.0.0.5",
    "1.3.6.1.2.1.31.1.1.1.6.1": U64,
    "1.3.6.1.2.1.31.1.1.1.10.1": 0,
    "1.3.6.1.4.1.99999.4294967295.1": "2.999.4294967295",
    "1.3.6.1.4.1.99999.7.0": 0,
    f"{SYS}.77.0": None,  # not served: noSuchObject
}


def test_request_answered_by_simulated_agent() -> None:
    oids = list(EXPECTED)
    assert len(oids) == 17
    template = GetRequestTemplate(AGENT_COMMUNITY.encode(), oids)

    async def main() -> tuple[SimulatedAgent, list[tuple[int, bytes]]]:
        agent = SimulatedAgent(AGENT_COMMUNITY, lambda: AGENT_VALUES)
        await agent.start()
        loop = asyncio.get_running_loop()
        replies = []
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                for rid in (0, 1, 300, 2**23, I32_MAX):
                    await loop.sock_sendto(sock, template.encode(rid), ("127.0.0.1", agent.port))
                    replies.append((rid, await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)))
        finally:
            await agent.stop()
        return agent, replies

    agent, replies = asyncio.run(main())
    assert (agent.requests, agent.rejected) == (5, 0)
    for rid, reply in replies:
        response = decode_response(reply, community=AGENT_COMMUNITY.encode())
        assert (response.request_id, response.error_status, response.error_index) == (rid, 0, 0)
        assert response.varbinds == list(EXPECTED.items())
        assert [type(v) for _, v in response.varbinds] == [type(v) for v in EXPECTED.values()]
        assert assert_agrees(reply).kind == "identical"
        with pytest.raises(CodecError, match=r"^community mismatch at byte 7$"):
            decode_response(reply, community=b"public")


# =============================================================================== 2. responses


def _vbs(*values: Any) -> list[tuple[tuple[int, ...], Any]]:
    return [((1, 3, 6, 1, 4, 1, 99999, i, 0), v) for i, v in enumerate(values)]


RESPONSES: dict[str, bytes] = {
    "empty": encode_response([]),
    "integer32-edges": encode_response(
        _vbs(*(v2c.Integer32(v) for v in [0, 1, -1, 127, 128, -128, -129, I32_MAX, I32_MIN]))
    ),
    "unsigned-edges": encode_response(
        _vbs(*(cls(v) for cls in (v2c.Counter32, v2c.Gauge32, v2c.TimeTicks, v2c.Unsigned32)
               for v in (0, 127, 128, 255, 2**31 - 1, 2**31, U32)))
    ),
    "counter64-edges": encode_response(
        _vbs(*(v2c.Counter64(v) for v in (0, 1, U32, 2**32, 2**63 - 1, 2**63, U64)))
    ),
    "strings": encode_response(
        _vbs(v2c.OctetString(b""), v2c.OctetString(b"x"), v2c.OctetString(b"\x00\xff" * 64),
             v2c.OctetString(b"y" * 127), v2c.OctetString(b"z" * 128), v2c.OctetString(b"w" * 255),
             v2c.OctetString(b"v" * 256), v2c.OctetString(bytes(range(256)) * 5),
             v2c.Opaque(b""), v2c.Opaque(b"\x9f\x78\x04\x3f\x80\x00\x00"), v2c.Opaque(b"o" * 300))
    ),
    "oids": encode_response(
        [((0, 0), v2c.ObjectIdentifier((0, 0))), ((1, 39), v2c.ObjectIdentifier((2, 0))),
         ((2, 999, U32), v2c.ObjectIdentifier((2, U32))),
         ((1, 3, 6, 1, 4, 1, U32, 127, 128, 16383, 16384, 2**21, 2**28), v2c.ObjectIdentifier((1, 3))),
         ((1, 3, *([U32] * 126)), v2c.ObjectIdentifier((1, 3, *range(126))))]
    ),
    "ipaddress": encode_response(_vbs(v2c.IpAddress("0.0.0.0"), v2c.IpAddress("255.255.255.255"),
                                      v2c.IpAddress("10.0.0.5"))),
    "exceptions-and-null": encode_response(
        _vbs(v2c.NoSuchObject(""), v2c.NoSuchInstance(""), v2c.EndOfMibView(""), v2c.Null(""))
    ),
    "error-response": encode_response(_vbs(v2c.Null(""), v2c.Null("")), error_status=18, error_index=2),
    "request-id-max": encode_response(_vbs(v2c.Integer32(1)), request_id=I32_MAX),
    "request-id-min": encode_response(_vbs(v2c.Integer32(1)), request_id=I32_MIN),
    "request-id-zero": encode_response(_vbs(v2c.Integer32(1)), request_id=0),
    "long-community": encode_response(_vbs(v2c.Integer32(1)), community=bytes(range(256)) * 2),
    "empty-community": encode_response(_vbs(v2c.Integer32(1)), community=b""),
    "many-varbinds": encode_response(
        [((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, i), v2c.Counter32(i * 2654435761 % 2**32)) for i in range(400)]
    ),
    "mixed-17": encode_response(
        _vbs(v2c.OctetString(b"HT812"), v2c.ObjectIdentifier((1, 3, 6, 1, 4, 1, 42397)),
             v2c.TimeTicks(123456), v2c.Integer32(-9), v2c.Gauge32(100_000_000),
             v2c.OctetString(b"\x00\x0b\x82\x12\x34\x56"),
             v2c.Counter32(2**31 + 7), v2c.IpAddress("192.168.1.20"), v2c.Counter64(2**40 + 7),
             v2c.Integer32(1), v2c.Integer32(2), v2c.Gauge32(0), v2c.Counter32(0), v2c.Counter64(U64),
             v2c.NoSuchObject(""), v2c.OctetString(b"1.0.47.4"), v2c.Opaque(b"\x9f\x78\x04\x41\x20\x00\x00"))
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(RESPONSES))
def test_response_matches_pysnmp(name: str) -> None:
    packet = RESPONSES[name]
    ref = pysnmp_decode(packet)
    assert ref is not None and ref.pdu_type == "ResponsePDU"
    assert decode_response(packet, community=ref.community) == ref.response()
    assert assert_agrees(packet).kind == "identical"


def test_response_values_spelled_out() -> None:
    got = decode_response(RESPONSES["mixed-17"])
    assert [v for _, v in got.varbinds] == [
        b"HT812", "1.3.6.1.4.1.42397", 123456, -9, 100_000_000, b"\x00\x0b\x82\x12\x34\x56", 2**31 + 7,
        "192.168.1.20", 2**40 + 7, 1, 2, 0, 0, U64, None, b"1.0.47.4", b"\x9f\x78\x04\x41\x20\x00\x00",
    ]  # fmt: skip
    oids = decode_response(RESPONSES["oids"]).varbinds
    assert oids[2] == ("2.999.4294967295", "2.4294967295")
    assert oids[4][0] == "1.3." + ".".join(["4294967295"] * 126)


# Unusual but valid BER that pysnmp's encoder never produces: both must accept, identically.
UNUSUAL_ACCEPTED = {
    "non-minimal short length as 0x81": b"\x30\x81" + RESPONSES["ipaddress"][1:],
    "non-minimal 4-byte length": b"\x30\x84\x00\x00\x00" + RESPONSES["empty"][1:],
    "counter32 max with leading zero": raw_response([vb(bytes.fromhex("410500ffffffff"))]),
    "counter32 padded with zeros": raw_response([vb(bytes.fromhex("41070000000000002a"))]),
    "integer padded": raw_response([vb(bytes.fromhex("020400000005")), vb(bytes.fromhex("0203ffffff"))]),
    "counter64 max padded": raw_response([vb(bytes.fromhex("460a0000ffffffffffffffff"))]),
    "version padded": raw_response([], version=b"\x02\x03\x00\x00\x01"),
    "request-id negative": raw_response([], header=bytes.fromhex("0201ff020100020100")),
    "oid single octet 1.3": raw_response([vb(b"\x05\x00", name=b"\x06\x01\x2b")]),
    "oid 0.0": raw_response([vb(b"\x06\x01\x00", name=b"\x06\x01\x00")]),
    "oid 2.16303 from multi-octet first arc": raw_response([vb(b"\x05\x00", name=b"\x06\x02\xff\x7f")]),
    "oid 2.(2**32-1)": raw_response([vb(b"\x05\x00", name=bytes.fromhex("0605908080804f"))]),
    "empty octet string and opaque": raw_response([vb(b"\x04\x00"), vb(b"\x44\x00")]),
    "varbind with long-form lengths": raw_response(
        [tlv(0x30, tlv(0x06, b"\x2b\x06\x01", b"\x81\x03") + tlv(0x04, b"abc", b"\x82\x00\x03"),
             b"\x83\x00\x00\x0d")]
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(UNUSUAL_ACCEPTED))
def test_unusual_encodings_accepted_like_pysnmp(name: str) -> None:
    assert assert_agrees(UNUSUAL_ACCEPTED[name]).kind == "identical"


def test_unusual_encodings_values() -> None:
    assert decode_response(UNUSUAL_ACCEPTED["counter32 max with leading zero"]).varbinds == [("1.3.6.1", U32)]
    assert decode_response(UNUSUAL_ACCEPTED["counter32 padded with zeros"]).varbinds == [("1.3.6.1", 42)]
    assert decode_response(UNUSUAL_ACCEPTED["integer padded"]).varbinds == [("1.3.6.1", 5), ("1.3.6.1", -1)]
    assert decode_response(UNUSUAL_ACCEPTED["request-id negative"]).request_id == -1
    assert decode_response(UNUSUAL_ACCEPTED["oid 2.(2**32-1)"]).varbinds == [("2.4294967295", None)]


# Malformed or out-of-range: pysnmp rejects, so must the codec.
BOTH_REJECT = {
    "empty packet": b"",
    "lone sequence tag": b"\x30",
    "truncated": RESPONSES["mixed-17"][:-1],
    "length overruns packet": b"\x30\x82\xff\xff\x02\x01\x01",
    "inner length overruns": raw_response([vb(b"\x04\x05abc")]),
    "counter32 0xffffffff is negative": raw_response([vb(bytes.fromhex("4104ffffffff"))]),
    "counter32 2**32": raw_response([vb(bytes.fromhex("41050100000000"))]),
    "gauge32 negative": raw_response([vb(bytes.fromhex("4201ff"))]),
    "timeticks negative": raw_response([vb(bytes.fromhex("430480000000"))]),
    "counter64 2**64": raw_response([vb(bytes.fromhex("4609010000000000000000"))]),
    "counter64 negative": raw_response([vb(bytes.fromhex("4608ffffffffffffffff"))]),
    "integer32 2**31": raw_response([vb(bytes.fromhex("02050080000000"))]),
    "integer32 below -2**31": raw_response([vb(bytes.fromhex("0205ff7fffffff"))]),
    "oid 0x80 leading octet in value": raw_response([vb(b"\x06\x03\x2b\x80\x01")]),
    "oid 0x80 leading octet in name": raw_response([vb(b"\x05\x00", name=b"\x06\x03\x2b\x80\x01")]),
    "oid truncated sub-identifier": raw_response([vb(b"\x05\x00", name=b"\x06\x02\x2b\x86")]),
    "oid empty": raw_response([vb(b"\x05\x00", name=b"\x06\x00")]),
    "null with content": raw_response([vb(b"\x05\x01\x00")]),
    "noSuchObject with content": raw_response([vb(b"\x80\x01\x00")]),
    "ipaddress 3 bytes": raw_response([vb(b"\x40\x03\x01\x02\x03")]),
    "ipaddress 5 bytes": raw_response([vb(b"\x40\x05\x01\x02\x03\x04\x05")]),
    "unknown value tag 0x47": raw_response([vb(b"\x47\x01\x01")]),
    "nsap 0x45": raw_response([vb(b"\x45\x01\x01")]),
    "constructed noSuchObject": raw_response([vb(b"\xa0\x00")]),
    "primitive varbind sequence": raw_response([tlv(0x10, OID_1361 + b"\x05\x00")]),
    "varbind missing value": raw_response([tlv(0x30, OID_1361)]),
    "varbind extra value": raw_response([vb(b"\x05\x00\x05\x00")]),
    "pdu extra component": raw_response([], header=bytes.fromhex("020105020100020100") + b"\x05\x00"),
    "error-index negative": raw_response([], header=bytes.fromhex("0201050201000201ff")),
    "error-index beyond varbinds": encode_response(_vbs(v2c.Null("")), error_status=5, error_index=2),
    "error-index 2**31-1": encode_response([], error_status=5, error_index=I32_MAX),
    "request-id 2**31": raw_response([], header=bytes.fromhex("02050080000000020100020100")),
    "primitive GetResponse 0x82": raw_response([], pdu_tag=0x82),
    "trap-v1 PDU 0xa4": raw_response([], pdu_tag=0xA4),
    "community missing": tlv(0x30, b"\x02\x01\x01" + tlv(0xA2, bytes.fromhex("0201050201000201003000"))),
    "length of length 0xff": b"\x30\xff" + b"\x00" * 40,
    "integer value in sequence position": raw_response([vb(b"\x05\x00")], version=b"\x30\x00"),
}


@pytest.mark.parametrize("name", list(BOTH_REJECT))
def test_malformed_rejected_by_both(name: str) -> None:
    packet = BOTH_REJECT[name]
    assert pysnmp_decode(packet) is None
    with pytest.raises(CodecError, match=r" at byte \d+$"):
        decode_response(packet)


# The codec's documented subset limits: pysnmp accepts these, the codec refuses them.
_BASE = RESPONSES["exceptions-and-null"]
SUBSET_LIMITS: dict[str, tuple[bytes, str]] = {
    "trailing bytes": (_BASE + b"\x00", "trailing bytes after message"),
    "version 0 (v1)": (raw_response([], version=b"\x02\x01\x00"), "unsupported SNMP version"),
    "version 3": (raw_response([], version=b"\x02\x01\x03"), "unsupported SNMP version"),
    "GetRequest PDU": (raw_response([], pdu_tag=0xA0), "not a GetResponse PDU"),
    "Report PDU": (raw_response([], pdu_tag=0xA8), "not a GetResponse PDU"),
    "GetBulk PDU": (raw_response([], pdu_tag=0xA5), "not a GetResponse PDU"),
    "indefinite length": (b"\x30\x80" + _BASE[2:] + b"\x00\x00", "indefinite length"),
    "5-byte length": (b"\x30\x85\x00\x00\x00\x00" + _BASE[1:], "length field longer than 4 bytes"),
    "high-tag-number INTEGER": (raw_response([vb(b"\x1f\x02\x01\x01")]), "high-tag-number form"),
    "constructed OCTET STRING": (
        raw_response([vb(bytes.fromhex("2406040401020304"))]),
        "constructed encoding",
    ),
    "constructed IpAddress": (raw_response([vb(bytes.fromhex("6006040401020304"))]), "constructed encoding"),
    "constructed community": (raw_response([], community=b"\x24\x08\x04\x06public"), "constructed encoding"),
    "empty INTEGER value": (raw_response([vb(b"\x02\x00")]), "empty INTEGER"),
    "empty Counter32": (raw_response([vb(b"\x41\x00")]), "empty INTEGER"),
    "empty request-id": (raw_response([], header=bytes.fromhex("0200020100020100")), "empty INTEGER"),
    "error-status 19": (
        raw_response([], header=bytes.fromhex("020105020113020100")),
        "error-status outside 0..18",
    ),
    "error-status -1": (
        raw_response([], header=bytes.fromhex("0201050201ff020100")),
        "error-status outside 0..18",
    ),
    "oid sub-identifier 2**32": (
        raw_response([vb(b"\x05\x00", name=bytes.fromhex("06062b9080808000"))]),
        "OID sub-identifier exceeds 2**32-1",
    ),
    "oid 129 sub-identifiers": (
        raw_response([vb(tlv(0x06, b"\x2b" + b"\x01" * 127))]),
        "OID has more than 128 sub-identifiers",
    ),
}


@pytest.mark.parametrize("name", list(SUBSET_LIMITS))
def test_documented_subset_limits(name: str) -> None:
    packet, reason = SUBSET_LIMITS[name]
    assert pysnmp_decode(packet) is not None, "pysnmp accepts it"
    with pytest.raises(CodecError) as info:
        decode_response(packet)
    assert info.value.what.startswith(reason)
    assert assert_agrees(packet) == Outcome("codec-only", reason)


def test_size_limits_and_input_types() -> None:
    big = b"\xab" * 70000
    assert assert_agrees(raw_response([vb(tlv(0x04, big))])) == Outcome("rejected-both")  # SIZE(0..65535)
    ok = raw_response([vb(tlv(0x04, big[:65535])), vb(tlv(0x44, big))])  # Opaque is unbounded
    assert assert_agrees(ok).kind == "identical"
    assert decode_response(ok).varbinds == [("1.3.6.1", big[:65535]), ("1.3.6.1", big)]
    packet = RESPONSES["mixed-17"]
    for same in (bytearray(packet), memoryview(packet)):
        got = decode_response(same)  # type: ignore[arg-type]
        assert got == decode_response(packet)
        assert all(type(v) in (int, str, bytes, type(None)) for _, v in got.varbinds)


def test_community_check_and_error_details() -> None:
    packet = RESPONSES["mixed-17"]
    assert decode_response(packet, community=b"public").request_id == 1234
    with pytest.raises(CodecError) as info:
        decode_response(packet, community=b"publiC")
    err = info.value
    assert isinstance(err, ValueError)
    assert packet[:4] == b"\x30\x82" + (len(packet) - 4).to_bytes(2, "big")  # community TLV at 4 + 3
    assert str(err) == "community mismatch at byte 7" and err.offset == 7 and "publi" not in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.offset, copy.what) == (CodecError, str(err), 7, err.what)
    with pytest.raises(CodecError, match=r"^OID sub-identifier with leading 0x80 octet at byte \d+$"):
        decode_response(BOTH_REJECT["oid 0x80 leading octet in name"])


# ============================================================================ 3. property tests

_u32 = st.integers(0, U32)
oids = st.builds(
    lambda first, second, rest: (first, second % 40 if first < 2 else second, *rest),
    st.integers(0, 2),
    _u32,
    st.lists(_u32, max_size=20) | st.lists(_u32, min_size=120, max_size=126),
)
values = st.one_of(
    st.integers(I32_MIN, I32_MAX).map(v2c.Integer32),
    st.binary(max_size=300).map(v2c.OctetString),
    oids.map(v2c.ObjectIdentifier),
    st.binary(min_size=4, max_size=4).map(v2c.IpAddress),
    st.tuples(st.sampled_from([v2c.Counter32, v2c.Gauge32, v2c.TimeTicks, v2c.Unsigned32]), _u32).map(
        lambda t: t[0](t[1])
    ),
    st.integers(0, U64).map(v2c.Counter64),
    st.binary(max_size=300).map(v2c.Opaque),
    st.sampled_from([v2c.NoSuchObject, v2c.NoSuchInstance, v2c.EndOfMibView, v2c.Null]).map(lambda c: c("")),
)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    binds = draw(st.lists(st.tuples(oids, values), max_size=12))
    return encode_response(
        binds,
        request_id=draw(st.integers(I32_MIN, I32_MAX)),
        error_status=draw(st.integers(0, 18)),
        error_index=draw(st.integers(0, len(binds))),  # pysnmp's API rejects an index past the end
        community=draw(st.binary(max_size=300)),
    )


FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(responses())
def test_property_valid_responses_round_trip(packet: bytes) -> None:
    ref = pysnmp_decode(packet)
    assert ref is not None
    assert decode_response(packet, community=ref.community) == ref.response()
    assert assert_agrees(packet).kind == "identical"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_property_arbitrary_bytes(packet: bytes) -> None:
    assert_agrees(packet)


@FAST
@given(responses(), st.randoms(use_true_random=False))
def test_property_mutated_responses(packet: bytes, rng: random.Random) -> None:
    for _ in range(5):
        _, mutant = mutate(rng, packet)
        assert_agrees(mutant)


@FAST
@given(responses(), st.data())
def test_property_truncations_and_byte_mutations(packet: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(packet) - 1))
    assert assert_agrees(packet[:cut]).kind != "identical"
    i = data.draw(st.integers(0, len(packet) - 1))
    byte = data.draw(st.integers(0, 255))
    assert_agrees(packet[:i] + bytes((byte,)) + packet[i + 1 :])
    offset, size, length = data.draw(st.sampled_from(length_fields(packet)))
    bigger = length + data.draw(st.integers(1, 2**32 - 1 - length))
    body = bigger.to_bytes((bigger.bit_length() + 7) // 8, "big")
    new = bytes((bigger,)) if bigger < 0x80 else bytes((0x80 | len(body),)) + body
    assert assert_agrees(packet[:offset] + new + packet[offset + size :]).kind != "identical"


def test_seeded_fuzz_smoke() -> None:
    """The fuzzer's own generator, briefly: random responses, their mutations and junk."""
    rng = random.Random(20260527)
    for _ in range(250):
        packet = random_response(rng)
        assert assert_agrees(packet).kind == "identical"
        for _ in range(4):
            assert_agrees(mutate(rng, packet)[1])
        assert_agrees(random_junk(rng)[1])
