"""Source stage: SNMP polling and MQTT subscription."""
