"""SNMPv3 notifications under the User-based Security Model, for the notification listener.

RFC 3412 message format, RFC 3414 USM (HMAC-MD5/SHA-96, key localization, timeliness),
RFC 7860 (HMAC-SHA-2), RFC 3826 (AES-128 CFB) and the AES-192/256 key extension net-snmp
uses. For an inform the listener is the authoritative engine: a sender first learns its
engine ID and clock from Reports (usmStatsUnknownEngineIDs, usmStatsNotInTimeWindows) and
the Response is authenticated (and encrypted) with keys localized to the listener's engine
ID. For a trap the sender is authoritative: keys are localized to the engine ID the trap
names, and each engine's clock is remembered so that a replayed trap older than the 150 s
window is refused.

The scoped PDU is handed to the v2c codec, so a v3 notification's variable-bindings are
read by exactly the code that reads a v2c one. Nothing here logs or keeps a key or a
passphrase; errors name what failed, never a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyasn1.type import univ
from pysnmp.proto.secmod.eso.priv.aes192 import AesBlumenthal192
from pysnmp.proto.secmod.eso.priv.aes256 import AesBlumenthal256
from pysnmp.proto.secmod.rfc3414 import localkey
from pysnmp.proto.secmod.rfc3414.priv.des import Des
from pysnmp.proto.secmod.rfc3826.priv.aes import Aes

from collector.config import ResolvedCredential
from collector.sources.snmp.codec import (
    _INTEGER,
    _OCTET_STRING,
    _SEQUENCE,
    CodecError,
    Notification,
    _encode_int,
    _encode_oid,
    _header,
    _integer,
    _tlv,
    decode_notification,
)
from collector.sources.snmp.pysnmp_getter import AUTH_PROTOCOLS

TIME_WINDOW_S = 150  # RFC 3414 2.2.3
_MAX_ENGINES = 4096  # trap senders' clocks remembered; the oldest is forgotten past this
_FLAG_AUTH, _FLAG_PRIV, _FLAG_REPORTABLE = 1, 2, 4
_USM = 3
_REPORT = 0xA8
_COUNTER32 = 0x41
# usmStats (SNMP-USER-BASED-SM-MIB, RFC 3414 5): the Report varbinds a sender acts on.
UNKNOWN_ENGINE_IDS = "1.3.6.1.6.3.15.1.1.4.0"
NOT_IN_TIME_WINDOWS = "1.3.6.1.6.3.15.1.1.2.0"
_DIGESTS: dict[str, tuple[Callable[..., Any], int]] = {
    "MD5": (hashlib.md5, 12),
    "SHA": (hashlib.sha1, 12),
    "SHA-224": (hashlib.sha224, 16),
    "SHA-256": (hashlib.sha256, 24),
    "SHA-384": (hashlib.sha384, 32),
    "SHA-512": (hashlib.sha512, 48),
}
_CIPHERS: dict[str, Any] = {
    "DES": Des(),
    "AES-128": Aes(),
    "AES-192": AesBlumenthal192(),
    "AES-256": AesBlumenthal256(),
}


class UsmError(CodecError):
    """A v3 message refused by the security model (unknown user, wrong digest, replay…)."""


@dataclass
class _User:
    credential: ResolvedCredential
    auth_ku: bytes  # the passphrases hashed once (RFC 3414 A.2: 1 MiB of hashing each)
    priv_ku: bytes | None
    localized: dict[bytes, tuple[bytes, bytes | None]] = field(default_factory=dict)

    @property
    def level(self) -> int:
        return _FLAG_AUTH | (_FLAG_PRIV if self.priv_ku is not None else 0)

    def keys(self, engine_id: bytes) -> tuple[bytes, bytes | None]:
        """(auth key, priv key) localized to `engine_id`."""
        got = self.localized.get(engine_id)
        if got is None:
            c = self.credential
            digest = _DIGESTS[c.auth_protocol][0]
            auth = digest(self.auth_ku + engine_id + self.auth_ku).digest()  # RFC 3414 A.2
            priv = None
            if self.priv_ku is not None and c.priv_protocol is not None:
                cipher = _CIPHERS[c.priv_protocol]
                key = cipher.localize_key(
                    AUTH_PROTOCOLS[c.auth_protocol],
                    univ.OctetString(self.priv_ku),
                    univ.OctetString(engine_id),
                )
                priv = bytes(key)
            if len(self.localized) >= _MAX_ENGINES:
                self.localized.pop(next(iter(self.localized)))
            got = self.localized[engine_id] = (auth, priv)
        return got


@dataclass(frozen=True)
class V3Notification:
    """A trap or inform that passed the security model. `response` acknowledges an inform."""

    notification: Notification
    user: str
    response: bytes | None


@dataclass(frozen=True)
class _Message:
    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_at: int  # where the authentication parameters' bytes start in the whole message
    auth_params: bytes
    priv_params: bytes
    data: bytes  # the scoped PDU, plaintext or encrypted
    encrypted: bool


class UsmReceiver:
    """Checks v3 notifications for the configured v3 credential sets; answers discovery.

    `receive` returns a V3Notification, or a Report to send back (bytes), or raises UsmError
    or CodecError naming what was wrong."""

    def __init__(
        self,
        credentials: Sequence[ResolvedCredential],
        engine_id: bytes,
        boots: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine_id = engine_id
        self.boots = boots
        self._clock = clock
        self._started = clock()
        self._users: dict[bytes, _User] = {}
        for c in credentials:
            if c.version != "v3":
                continue
            digest = _DIGESTS[c.auth_protocol][0]
            auth_ku = bytes(localkey.hash_passphrase(c.auth_key, digest))
            priv_ku = None
            if c.priv_protocol is not None:
                cipher = _CIPHERS[c.priv_protocol]
                priv_ku = bytes(cipher.hash_passphrase(AUTH_PROTOCOLS[c.auth_protocol], c.priv_key))
            self._users[c.user.encode()] = _User(c, auth_ku, priv_ku)
        # trap senders: engine ID -> (boots, time, our clock when that time was current)
        self._clocks: dict[bytes, tuple[int, int, float]] = {}
        self.counters = {
            "unknown_engine_ids": 0,
            "unknown_user_names": 0,
            "wrong_digests": 0,
            "not_in_time_windows": 0,
            "unsupported_sec_levels": 0,
            "decryption_errors": 0,
        }

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def engine_time(self) -> int:
        return int(self._clock() - self._started)

    def receive(self, packet: bytes) -> V3Notification | bytes:
        msg = _parse(packet)
        ours = msg.engine_id == self.engine_id
        if not msg.engine_id or not msg.user:
            return self._discovery(msg)
        user = self._users.get(msg.user)
        if user is None:
            self.counters["unknown_user_names"] += 1
            raise UsmError("an SNMPv3 user name not configured", 0)
        if msg.flags & (_FLAG_AUTH | _FLAG_PRIV) != user.level:
            self.counters["unsupported_sec_levels"] += 1
            raise UsmError(f"security level of user {user.credential.user!r} is not the configured one", 0)
        auth_key, priv_key = user.keys(msg.engine_id)
        digest, length = _DIGESTS[user.credential.auth_protocol]
        whole = packet[: msg.auth_at] + bytes(length) + packet[msg.auth_at + length :]
        expected = hmac.new(auth_key, whole, digest).digest()[:length]
        if len(msg.auth_params) != length or not hmac.compare_digest(expected, msg.auth_params):
            self.counters["wrong_digests"] += 1
            raise UsmError(f"wrong authentication digest for user {user.credential.user!r}", msg.auth_at)
        if ours and not self._in_our_window(msg):
            self.counters["not_in_time_windows"] += 1
            if msg.flags & _FLAG_REPORTABLE:
                return self._report(msg, NOT_IN_TIME_WINDOWS, user)
            raise UsmError("an SNMPv3 message outside the time window", 0)
        if not ours and not self._in_sender_window(msg):
            self.counters["not_in_time_windows"] += 1
            raise UsmError("an SNMPv3 trap older than its engine's clock allows (a replay?)", 0)
        scoped = msg.data
        if msg.encrypted:
            if priv_key is None or user.credential.priv_protocol is None:
                raise UsmError("an encrypted scoped PDU for a user without privacy", 0)
            try:
                cipher = _CIPHERS[user.credential.priv_protocol]
                params = (msg.boots, msg.time, univ.OctetString(msg.priv_params))
                scoped = bytes(
                    cipher.decrypt_data(univ.OctetString(priv_key), params, univ.OctetString(scoped))
                )
            except Exception:  # pysnmp raises its StatusInformation; never echo key material
                self.counters["decryption_errors"] += 1
                raise UsmError("the scoped PDU could not be decrypted", 0) from None
        context_engine, context_name, pdu = _scoped_pdu(scoped)
        note = decode_notification(_tlv(_SEQUENCE, b"\x02\x01\x01\x04\x00" + pdu))
        if note.inform and not ours:
            self.counters["unknown_engine_ids"] += 1
            return self._report(msg, UNKNOWN_ENGINE_IDS, None, note.request_id)
        response = None
        if note.inform:
            assert note.response is not None
            answer_pdu = note.response[len(note.response) - len(pdu) :]
            response = self._encode(msg, user, _scoped(context_engine, context_name, answer_pdu))
        return V3Notification(note, user.credential.user, response)

    def _in_our_window(self, msg: _Message) -> bool:
        return msg.boots == self.boots and abs(msg.time - self.engine_time()) <= TIME_WINDOW_S

    def _in_sender_window(self, msg: _Message) -> bool:
        """RFC 3414 3.2 step 7b, for a trap: the sender's clock as last seen, advanced."""
        now = self._clock()
        last = self._clocks.get(msg.engine_id)
        if last is not None:
            boots, then, seen = last
            estimate = then + int(now - seen)
            if (
                boots == 2**31 - 1
                or msg.boots < boots
                or (msg.boots == boots and msg.time < estimate - TIME_WINDOW_S)
            ):
                return False
            if (msg.boots, msg.time) <= (boots, estimate):
                return True
        elif len(self._clocks) >= _MAX_ENGINES:
            self._clocks.pop(next(iter(self._clocks)))
        self._clocks[msg.engine_id] = (msg.boots, msg.time, now)
        return True

    def _discovery(self, msg: _Message) -> bytes:
        self.counters["unknown_engine_ids"] += 1
        if not msg.flags & _FLAG_REPORTABLE:
            raise UsmError("an SNMPv3 message without engine ID or user that asks for no report", 0)
        request_id = 0
        if not msg.encrypted:  # the probe's own request-id, so the sender matches the Report
            _, _, pdu = _scoped_pdu(msg.data)
            start, end = _header(pdu, 0, len(pdu), pdu[0] if pdu else 0xA0)
            istart, iend = _header(pdu, start, end, _INTEGER)
            request_id = _integer(pdu, istart, iend, start)
        return self._report(msg, UNKNOWN_ENGINE_IDS, None, request_id)

    def _report(self, msg: _Message, oid: str, user: _User | None, request_id: int = 0) -> bytes:
        """A Report PDU with one usmStats counter: unauthenticated, or authNoPriv for `user`."""
        count = self.counters["unknown_engine_ids" if oid == UNKNOWN_ENGINE_IDS else "not_in_time_windows"]
        varbind = _tlv(_SEQUENCE, _encode_oid(oid) + _encode_int(count, _COUNTER32))
        pdu = _tlv(
            _REPORT, _encode_int(request_id) + _encode_int(0) + _encode_int(0) + _tlv(_SEQUENCE, varbind)
        )
        return self._encode(msg, user, _scoped(self.engine_id, b"", pdu), report=True)

    def _encode(self, msg: _Message, user: _User | None, scoped: bytes, report: bool = False) -> bytes:
        """A message from this engine in answer to `msg` (same msgID), authenticated for
        `user` (and encrypted, for a Response to an authPriv user)."""
        boots, now = self.boots, self.engine_time()
        flags, auth_key, priv_key, length, digest = 0, b"", None, 0, None
        if user is not None:
            auth_key, priv_key = user.keys(self.engine_id)
            digest, length = _DIGESTS[user.credential.auth_protocol]
            flags = _FLAG_AUTH if report else user.level
        data, salt = _tlv(_OCTET_STRING, b""), b""
        if flags & _FLAG_PRIV and user is not None and priv_key is not None:
            assert user.credential.priv_protocol is not None
            cipher = _CIPHERS[user.credential.priv_protocol]
            encrypted, salt_value = cipher.encrypt_data(
                univ.OctetString(priv_key), (boots, now, None), scoped
            )
            data, salt = _tlv(_OCTET_STRING, bytes(encrypted)), bytes(salt_value)
        else:
            data = scoped
        header = _tlv(
            _SEQUENCE,
            _encode_int(msg.msg_id)
            + _encode_int(65507)
            + _tlv(_OCTET_STRING, bytes((flags,)))
            + _encode_int(_USM),
        )
        user_name = user.credential.user.encode() if user is not None else msg.user
        head = (
            _tlv(_OCTET_STRING, self.engine_id)
            + _encode_int(boots)
            + _encode_int(now)
            + _tlv(_OCTET_STRING, user_name)
        )
        params = _tlv(_SEQUENCE, head + _tlv(_OCTET_STRING, bytes(length)) + _tlv(_OCTET_STRING, salt))
        whole = _tlv(_SEQUENCE, _encode_int(3) + header + _tlv(_OCTET_STRING, params) + data)
        if digest is None:
            return whole
        mac = hmac.new(auth_key, whole, digest).digest()[:length]
        at = len(whole) - len(data) - len(_tlv(_OCTET_STRING, salt)) - length
        return whole[:at] + mac + whole[at + length :]


def _scoped(context_engine: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return _tlv(_SEQUENCE, _tlv(_OCTET_STRING, context_engine) + _tlv(_OCTET_STRING, context_name) + pdu)


def _scoped_pdu(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(contextEngineID, contextName, PDU bytes). Bytes after the SEQUENCE (DES padding) are ignored."""
    start, end = _header(data, 0, len(data), _SEQUENCE)
    s, e = _header(data, start, end, _OCTET_STRING)
    context_engine = data[s:e]
    s, e2 = _header(data, e, end, _OCTET_STRING)
    context_name = data[s:e2]
    if e2 >= end:
        raise CodecError("a scoped PDU without a PDU", e2)
    return context_engine, context_name, data[e2:end]


def is_v3(packet: bytes) -> bool:
    """Whether a datagram is an SNMPv3 message (version field 3), cheaply."""
    try:
        start, end = _header(packet, 0, len(packet), _SEQUENCE)
        s, e = _header(packet, start, end, _INTEGER)
        return _integer(packet, s, e, start) == 3
    except CodecError:
        return False


def _parse(buf: bytes) -> _Message:
    total = len(buf)
    start, end = _header(buf, 0, total, _SEQUENCE)
    if end != total:
        raise CodecError("trailing bytes after message", end)
    s, pos = _header(buf, start, end, _INTEGER)
    if _integer(buf, s, pos, start) != 3:
        raise CodecError("not an SNMPv3 message", start)
    hstart, hend = _header(buf, pos, end, _SEQUENCE)
    msg_id, at = _int_at(buf, hstart, hend)
    _max_size, at = _int_at(buf, at, hend)
    flags_raw, at = _octets_at(buf, at, hend)
    model, at = _int_at(buf, at, hend)
    if model != _USM:
        raise CodecError(f"security model {model} (only USM = 3)", hstart)
    if len(flags_raw) != 1:
        raise CodecError("msgFlags must be one octet", hstart)
    flags = flags_raw[0]
    if flags & _FLAG_PRIV and not flags & _FLAG_AUTH:
        raise CodecError("msgFlags: privacy without authentication", hstart)
    s, params_end = _header(buf, hend, end, _OCTET_STRING)
    ps, pe = _header(buf, s, params_end, _SEQUENCE)
    engine_id, at = _octets_at(buf, ps, pe)
    boots, at = _int_at(buf, at, pe)
    engine_time, at = _int_at(buf, at, pe)
    user, at = _octets_at(buf, at, pe)
    auth_at = _header(buf, at, pe, _OCTET_STRING)[0]
    auth_params, at = _octets_at(buf, at, pe)
    priv_params, at = _octets_at(buf, at, pe)
    if not (0 <= boots < 2**31 and 0 <= engine_time < 2**31):
        raise CodecError("msgAuthoritativeEngineBoots or Time out of range", ps)
    if params_end >= end:
        raise CodecError("a message without a scoped PDU", params_end)
    encrypted = buf[params_end] == _OCTET_STRING
    if encrypted:
        ds, de = _header(buf, params_end, end, _OCTET_STRING)
        data = buf[ds:de]
        if not flags & _FLAG_PRIV:
            raise CodecError("an encrypted scoped PDU without the privacy flag", params_end)
    else:
        data = buf[params_end:end]
        if flags & _FLAG_PRIV:
            raise CodecError("a plaintext scoped PDU with the privacy flag", params_end)
    return _Message(
        msg_id, flags, engine_id, boots, engine_time, user, auth_at, auth_params, priv_params, data, encrypted
    )


def _int_at(buf: bytes, at: int, end: int) -> tuple[int, int]:
    s, e = _header(buf, at, end, _INTEGER)
    return _integer(buf, s, e, at), e


def _octets_at(buf: bytes, at: int, end: int) -> tuple[bytes, int]:
    s, e = _header(buf, at, end, _OCTET_STRING)
    return buf[s:e], e
