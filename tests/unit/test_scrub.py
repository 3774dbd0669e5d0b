"""The secret scrubber on the configuration key names vendors' admin guides use for
passwords and keys, in the shapes devices and payloads carry them."""

from __future__ import annotations

import logging

import pytest

from collector.core.records import redacted_head
from collector.core.scrub import ScrubbingFilter, is_secret_name, scrub, scrub_text

SECRET = "hunter2-Zq9"
# Key names holding secrets (Grandstream P-values, Yealink and Poly config parameters,
# generic ones), and key names that must stay readable.
SECRET_KEYS = [
    "P2", "P34", "account.1.password", "account.2.auth_name_password", "reg.1.auth.password",
    "device.sip.password", "sip_pw", "pwd", "admin_pwd", "psk", "wifi.psk", "pin", "voicemail.pin",
    "api_key", "apiKey", "access_token", "secret", "snmp.community", "auth-key", "credentials",
    "network.802_1x.password", "security.user_password", "passphrase",
]  # fmt: skip
PLAIN_KEYS = ["P35", "P3", "model", "firmware.version", "ping", "mac", "codec", "line1_state", "uptime_s"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_every_vendor_secret_key_is_masked_in_every_shape(key: str) -> None:
    assert is_secret_name(key), key
    shapes = [
        f"{key}={SECRET}",
        f"{key} = {SECRET}",
        f"{key}: {SECRET}",
        f'"{key}": "{SECRET}"',
        f"'{key}': '{SECRET}'",
        f'{{"a": 1, "{key}": ["x", "{SECRET}"]}}',
        f"x=1&{key}={SECRET}&y=2",
        f'{{"{key}": "{SECRET}',  # cut off
    ]
    for text in shapes:
        assert SECRET not in scrub_text(text), text
    assert SECRET not in str(scrub({"outer": [{"inner": {key: SECRET}}, {key: [1, SECRET]}]}))


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_other_keys_stay_readable(key: str) -> None:
    assert not is_secret_name(key)
    assert scrub_text(f"{key}=1.0.47.4") == f"{key}=1.0.47.4"


@pytest.mark.parametrize(
    "text",
    [
        f"https://alice:{SECRET}@prov.example.invalid/cfg.xml",
        f"sip:1001:{SECRET}@pbx.invalid;transport=tcp",
        f"<sips:1001:{SECRET}@pbx.invalid>",
        f"http://hooks.invalid/x?token={SECRET}&a=1",
        f'POST https://h.invalid/notify?sig={SECRET} "HTTP/1.1 500"',
    ],
)
def test_urls_and_sip_uris_lose_their_passwords(text: str) -> None:
    scrubbed = scrub_text(text)
    assert SECRET not in scrubbed and "***" in scrubbed


def test_quarantine_heads_and_log_lines_are_scrubbed() -> None:
    head = redacted_head(f'{{"model": "T54W", "sip_pw": "{SECRET}", "junk'.encode())
    assert SECRET not in head and "T54W" in head
    record = logging.LogRecord(
        "httpx", logging.INFO, "f", 1, "HTTP Request: POST %s", (f"https://u:{SECRET}@h/x",), None
    )
    assert ScrubbingFilter().filter(record) and SECRET not in record.getMessage()
