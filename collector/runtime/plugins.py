"""The sources, registered in one place: each with the config section that enables it, how
to build it, and the codec the intake decodes its items with.

Adding a source: implement `collector.core.interfaces.Source` in a folder of
`collector/sources/`, a codec in `collector/decode/` if its items are a new format, a
section in `collector.config.ServiceConfig`, and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collector.config import ServiceConfig
from collector.core.interfaces import Source
from collector.core.records import SourceName
from collector.decode import Codec, MqttJsonCodec, SnmpCodec, SnmpTrapCodec, VqRtcpxrCodec
from collector.profiles import ProfileResolver
from collector.sources.mqtt import MqttSubscriber
from collector.sources.sip import SipListener
from collector.sources.snmp import SnmpPoller
from collector.sources.snmp_traps import TrapListener


@dataclass(frozen=True)
class SourcePlugin:
    name: SourceName
    enabled: Callable[[ServiceConfig], bool]
    build: Callable[[ServiceConfig, ProfileResolver], Source]
    codec: Callable[[ServiceConfig, ProfileResolver], Codec]


SOURCES: tuple[SourcePlugin, ...] = (
    SourcePlugin(
        "snmp",
        enabled=lambda config: config.snmp.enabled,
        build=lambda config, profiles: SnmpPoller(config.snmp, config.resolved_credentials(), profiles),
        codec=lambda _config, _profiles: SnmpCodec(),
    ),
    SourcePlugin(
        "mqtt",
        enabled=lambda config: config.mqtt.enabled,
        build=lambda config, _profiles: MqttSubscriber(config.mqtt),
        codec=lambda config, _profiles: MqttJsonCodec(
            config.mqtt.device_id_from,
            config.mqtt.device_id_level,
            config.mqtt.max_payload_bytes,
            config.mqtt.payload_identity_level,
        ),
    ),
    SourcePlugin(
        "sip",
        enabled=lambda config: config.sip.enabled,
        build=lambda config, _profiles: SipListener(config.sip),
        codec=lambda _config, _profiles: VqRtcpxrCodec(),
    ),
    SourcePlugin(
        "snmp_trap",
        enabled=lambda config: config.snmp_traps.enabled,
        build=lambda config, _profiles: TrapListener(
            config.snmp_traps, config.trap_credentials(), config.data_dir
        ),
        codec=lambda _config, profiles: SnmpTrapCodec(profiles.profiles.identity_oids()),
    ),
)
