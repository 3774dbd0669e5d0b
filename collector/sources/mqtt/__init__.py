"""The MQTT source: paho-mqtt 2 on the service's event loop."""

from collector.sources.mqtt.subscriber import CONTROL_SUFFIX, MqttSubscriber

__all__ = ["CONTROL_SUFFIX", "MqttSubscriber"]
