"""Retention policy: which class each record kind belongs to, and how long each class lives."""

from collector.core.errors import PolicyError
from collector.core.records import EndAction, RetentionClass
from collector.retention.policy import RetentionPolicy, load_policy, parse_duration

__all__ = [
    "EndAction",
    "PolicyError",
    "RetentionClass",
    "RetentionPolicy",
    "load_policy",
    "parse_duration",
]
