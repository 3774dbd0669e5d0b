"""Outbound webhooks: HMAC-SHA256 signed notices delivered from an outbox at least once,
with the one capped backoff. Deactivation notices and alert notices both go this way."""

from collector.webhooks.dispatcher import WebhookDispatcher, WebhookTarget
from collector.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookDispatcher", "WebhookTarget", "sign", "verify"]
