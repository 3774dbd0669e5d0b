"""Device profiles: data files that say what to read from a device family and how to decode it."""

from collector.profiles.loader import ProfileError, ProfileSet, load_profiles
from collector.profiles.model import DeviceProfile, FieldSpec, MqttFieldSpec, SnmpFieldSpec

__all__ = [
    "DeviceProfile",
    "FieldSpec",
    "MqttFieldSpec",
    "ProfileError",
    "ProfileSet",
    "SnmpFieldSpec",
    "load_profiles",
]
