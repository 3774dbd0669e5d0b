"""Provisioning registry: the source of truth for accounts, devices and their lifecycle."""
