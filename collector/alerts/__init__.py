"""Alerts: rules from the config, evaluated periodically over the fleet views; one notice
per device and rule while it fires, and a recovery notice when it clears, to the log and
to webhooks."""
