"""SNMP notifications: v2c traps and informs, read with the sending device's profile."""

from collector.sources.snmp_traps.listener import TrapListener

__all__ = ["TrapListener"]
