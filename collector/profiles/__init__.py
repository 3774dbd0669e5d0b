"""Device profiles: data files that say what to read from a device family and how to decode it."""

from collector.core.errors import ProfileError
from collector.profiles.loader import ProfileSet, load_profiles
from collector.profiles.model import DeviceProfile, FieldSpec, MqttFieldSpec, SnmpFieldSpec
from collector.profiles.resolver import ProfileResolver

__all__ = [
    "DeviceProfile",
    "FieldSpec",
    "MqttFieldSpec",
    "ProfileError",
    "ProfileResolver",
    "ProfileSet",
    "SnmpFieldSpec",
    "load_profiles",
]
