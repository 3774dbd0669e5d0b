"""What the intake asks of a transport's decoder (a codec): where an item is from, and the
observations it holds according to the device's profile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from collector.core.records import Observation, Received
from collector.profiles.model import DeviceProfile
from provisioning.models import Transport


class Located(NamedTuple):
    """How an item names its device: a SIP identity, a MAC, or the registry address it came
    from (an MQTT device's topic root, a SIP report's host). `kind` is the record kind the
    item says it holds ("" when the payload says); `document` what had to be parsed to
    tell, for `decode` to reuse."""

    device_id: str | None
    address: str | None
    kind: str
    document: Any = None
    identity: str | None = None  # a SIP address of record (user@host): tried first


# The observations, and the reasons of records refused (each is quarantined with its reason).
Decoded = tuple[list[Observation], Sequence[str]]


class Codec(Protocol):
    transport: Transport
    uses_profile: bool  # False: the format is the same for every vendor (decode gets None)

    def locate(self, item: Received) -> Located:
        """Raises Rejected when the item cannot even tell where it is from."""
        ...

    def decode(
        self, profile: DeviceProfile | None, device_id: str, item: Received, located: Located | None
    ) -> Decoded:
        """Raises Rejected (the reason goes to the quarantine) for what cannot become a record."""
        ...
