"""Decode stage: raw varbinds or payloads become Observations, as their device profile says.
One codec per transport (`Codec`): where an item is from, and what it holds."""

from collector.decode.base import Codec, Decoded, Located
from collector.decode.mqtt import MqttJsonCodec
from collector.decode.snmp import SnmpCodec, SnmpTrapCodec
from collector.decode.vqrtcpxr import VqRtcpxrCodec

__all__ = ["Codec", "Decoded", "Located", "MqttJsonCodec", "SnmpCodec", "SnmpTrapCodec", "VqRtcpxrCodec"]
