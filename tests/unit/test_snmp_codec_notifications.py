"""v2c notifications: traps and informs decoded, the inform's acknowledgement built from it."""

from __future__ import annotations

import pytest

from collector.sources.snmp.codec import CodecError, decode_notification, decode_response

# snmpinform -v2c -c x 127.0.0.1:P 360000 1.3.6.1.4.1.42397.1.2.100 (net-snmp 5.9, captured)
INFORM = bytes.fromhex(
    "3042020101040178a63a020411d7fb7c020100020100302c300f06082b060102010103004303057e40"
    "3019060a2b060106030101040100060b2b0601040182cb1d010264"
)


def test_an_inform_and_its_response() -> None:
    note = decode_notification(INFORM)
    assert note.inform and note.community == b"x" and note.request_id == 0x11D7FB7C
    assert note.varbinds == [
        ("1.3.6.1.2.1.1.3.0", 360000),
        ("1.3.6.1.6.3.1.1.4.1.0", "1.3.6.1.4.1.42397.1.2.100"),
    ]
    assert note.response is not None
    answer = decode_response(note.response)  # a Response-PDU with the same request-id and varbinds
    assert (answer.request_id, answer.varbinds) == (note.request_id, note.varbinds)


def test_a_trap_needs_no_response() -> None:
    trap = INFORM.replace(b"\xa6\x3a", b"\xa7\x3a", 1)
    note = decode_notification(trap)
    assert not note.inform and note.response is None


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (INFORM.replace(b"\xa6\x3a", b"\xa2\x3a", 1), "not an SNMPv2-Trap or InformRequest"),
        (INFORM[:-3], "overruns"),
        (INFORM.replace(b"\x02\x01\x01\x04", b"\x02\x01\x00\x04", 1), "only v2c"),
    ],
)
def test_what_is_not_a_notification(packet: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_notification(packet)
