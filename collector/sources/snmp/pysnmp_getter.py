"""GETs through pysnmp's engine: SNMPv3 (USM: auth, privacy, engine discovery) and, when
configured with engine = "pysnmp", v2c too. Retries are hookflash's, not pysnmp's: the poller
asks whether the device may be collected from before each attempt, so nothing is
retransmitted after a stop."""

from __future__ import annotations

from typing import Any

from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.proto import rfc1902

from collector.config import ResolvedCredential
from collector.core.errors import SourceError
from collector.core.records import RawValue

AUTH_PROTOCOLS = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA-224": USM_AUTH_HMAC128_SHA224,
    "SHA-256": USM_AUTH_HMAC192_SHA256,
    "SHA-384": USM_AUTH_HMAC256_SHA384,
    "SHA-512": USM_AUTH_HMAC384_SHA512,
}
# AES-192/256 keys are extended the way net-snmp does it ("Blumenthal"); with SHA-256 or
# longer digests no extension is needed and both flavours agree.
_PRIV = {
    "DES": USM_PRIV_CBC56_DES,
    "AES-128": USM_PRIV_CFB128_AES,
    "AES-192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES-256": USM_PRIV_CFB256_AES_BLUMENTHAL,
}


class SnmpError(SourceError):
    """A poll failed (timeout, agent error, missing credentials). Never carries a secret."""


def to_raw(value: Any) -> RawValue | None:
    """pysnmp value → plain Python; None for noSuch*/endOfMibView."""
    if isinstance(value, univ.Null):  # also noSuchObject/noSuchInstance/endOfMibView, which subclass it;
        return None  # checked first because pyasn1's Null is an OctetString
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(part) for part in value)
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in value.asOctets())
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets())
    if isinstance(value, univ.Integer):
        return int(value)
    raise SnmpError(f"unsupported SNMP value type {type(value).__name__}")


def auth_data(credential: ResolvedCredential) -> CommunityData | UsmUserData:
    if credential.version == "v2c":
        return CommunityData(credential.community, mpModel=1)
    return UsmUserData(
        credential.user,
        authKey=credential.auth_key,
        authProtocol=AUTH_PROTOCOLS[credential.auth_protocol],
        privKey=credential.priv_key or None,
        privProtocol=_PRIV[credential.priv_protocol] if credential.priv_protocol else None,
    )


class PysnmpGetter:
    def __init__(self, timeout_s: float) -> None:
        self._engine = SnmpEngine()
        self._timeout = timeout_s
        self._targets: dict[tuple[str, int], UdpTransportTarget] = {}
        self._auth: dict[str, CommunityData | UsmUserData] = {}

    async def get(
        self, address: tuple[str, int], credential: ResolvedCredential, oids: list[str]
    ) -> dict[str, RawValue | None]:
        """One attempt; TimeoutError when nothing came back in time."""
        target = await self._target(address)
        error, status, index, var_binds = await get_cmd(
            self._engine,
            self._auth_for(credential),
            target,
            ContextData(),
            *(ObjectType(ObjectIdentity(o)) for o in oids),
            lookupMib=False,
        )
        self._check(error, status, index)
        return {str(name): to_raw(value) for name, value in var_binds}

    async def bulk(
        self, address: tuple[str, int], credential: ResolvedCredential, oids: list[str], max_repetitions: int
    ) -> list[tuple[str, RawValue | None]]:
        """One GETBULK (no non-repeaters); TimeoutError when nothing came back in time."""
        target = await self._target(address)
        error, status, index, var_binds = await bulk_cmd(
            self._engine,
            self._auth_for(credential),
            target,
            ContextData(),
            0,
            max_repetitions,
            *(ObjectType(ObjectIdentity(o)) for o in oids),
            lookupMib=False,
        )
        self._check(error, status, index)
        return [(str(name), to_raw(value)) for name, value in var_binds]

    async def _target(self, address: tuple[str, int]) -> UdpTransportTarget:
        target = self._targets.get(address)
        if target is None:
            target = self._targets[address] = await UdpTransportTarget.create(
                address, timeout=self._timeout, retries=0
            )
        return target

    def _auth_for(self, credential: ResolvedCredential) -> CommunityData | UsmUserData:
        auth = self._auth.get(credential.name)
        if auth is None:
            auth = self._auth[credential.name] = auth_data(credential)
        return auth

    @staticmethod
    def _check(error: Any, status: Any, index: Any) -> None:
        if error:
            if "timeout" in str(error).lower():
                raise TimeoutError(str(error))
            raise SnmpError(str(error))
        if status:
            raise SnmpError(f"agent error-status {int(status)} at index {int(index)}")

    def forget(self, address: tuple[str, int]) -> None:
        self._targets.pop(address, None)

    def close(self) -> None:
        self._engine.close_dispatcher()
