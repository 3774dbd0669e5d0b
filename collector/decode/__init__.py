"""Decode stage: raw varbinds or payloads become Observations, as their device profile says."""
