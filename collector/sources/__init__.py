"""Sources: one folder each (snmp, mqtt). A source receives and hands each item, as it
arrived, to the intake (collector.core.interfaces); it decides nothing about storing it.
They are registered, with their config sections and codecs, in collector.runtime.plugins."""
