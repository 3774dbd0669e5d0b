"""Sink stage: where tagged records are stored."""
