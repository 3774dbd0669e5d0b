"""The one profile lookup: which profile a device's data is read with.

In order: the profile the registry names for the device; else the first whose vendor and
model prefixes match; else, for an SNMP device, the one its sysObjectID matches, which the
poller asks the agent for once (`learn`). The intake and the poller ask the same resolver,
so both always read a device with the same profile.
"""

from __future__ import annotations

from collector.core.errors import ProfileError
from collector.profiles.loader import ProfileSet
from collector.profiles.model import DeviceProfile
from provisioning.models import Device


class ProfileResolver:
    def __init__(self, profiles: ProfileSet) -> None:
        self.profiles = profiles
        self._by_model: dict[tuple[str, str], DeviceProfile | None] = {}
        self._learned: dict[str, tuple[tuple[str, str, str], DeviceProfile]] = {}
        # Per device, the answer for the Device object it was given (the gate replaces a
        # device's object when it changes): asked for every message, so one lookup.
        self._answered: dict[str, tuple[Device, DeviceProfile]] = {}

    def for_device(self, device: Device) -> DeviceProfile | None:
        """The device's profile, or None until its sysObjectID is learned. Raises
        ProfileError when the registry names a profile that does not exist."""
        answered = self._answered.get(device.id)
        if answered is not None and answered[0] is device:
            return answered[1]
        found = self._find(device)
        if found is not None:
            if len(self._answered) > 1_000_000:
                self._answered.clear()
            self._answered[device.id] = (device, found)
        return found

    def _find(self, device: Device) -> DeviceProfile | None:
        if device.profile:
            return self.profiles.get(device.profile)
        key = (device.vendor, device.model)
        if key not in self._by_model:
            self._by_model[key] = self.profiles.by_model(device.vendor, device.model)
        found = self._by_model[key]
        if found is not None:
            return found
        learned = self._learned.get(device.id)
        # Learned for this device as it was: a changed profile, vendor or model asks again.
        if learned is not None and learned[0] == (device.profile, device.vendor, device.model):
            return learned[1]
        return None

    def require(self, device: Device) -> DeviceProfile:
        found = self.for_device(device)
        if found is None:
            raise ProfileError(f"no profile for {device.vendor} {device.model}; set one in the registry")
        return found

    def learn(self, device: Device, sys_object_id: str) -> DeviceProfile:
        """The profile for the sysObjectID the agent answered (generic when none matches)."""
        profile = self.profiles.by_sysobjectid(sys_object_id)
        self._learned[device.id] = ((device.profile, device.vendor, device.model), profile)
        self._answered.pop(device.id, None)
        return profile

    def forget(self, device_id: str) -> None:
        """The device changed or left: learn its profile anew when it is next polled."""
        self._learned.pop(device_id, None)
        self._answered.pop(device_id, None)
