"""The SNMP source: a poller with its own v2c codec (fast) and pysnmp for v3."""

from collector.sources.snmp.poller import SnmpPoller

__all__ = ["SnmpPoller"]
