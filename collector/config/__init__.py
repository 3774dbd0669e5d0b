"""Service configuration (TOML), validated at load. Secrets are SecretStr: never printed."""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from provisioning.validation import describe


class ConfigError(ValueError):
    """The config file is invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnmpConfig(_Section):
    enabled: bool = True
    interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    max_in_flight: int = Field(default=256, ge=1)
    tick_s: float = Field(default=0.05, gt=0, le=1)
    # "fast": hookflash's own v2c codec on one shared socket; "pysnmp": pysnmp's engine.
    engine: Literal["fast", "pysnmp"] = "fast"


def check_subscription_filter(value: str) -> str:
    """An MQTT subscription filter: '#' only as the whole last level, '+' only as a whole level."""
    if not value:
        raise ValueError("must be a non-empty MQTT topic filter, e.g. hookflash/+/+")
    if "\x00" in value:
        raise ValueError("MQTT topic filter must not contain a NUL character")
    if len(value.encode("utf-8")) > 65535:
        raise ValueError("MQTT topic filter is longer than 65535 bytes")
    levels = value.split("/")
    for n, level in enumerate(levels):
        if "#" in level and (level != "#" or n != len(levels) - 1):
            raise ValueError(
                f"{value!r} is not a valid MQTT topic filter: "
                "'#' must be the whole last level, e.g. hookflash/#"
            )
        if "+" in level and level != "+":
            raise ValueError(
                f"{value!r} is not a valid MQTT topic filter: '+' must be a whole level, e.g. hookflash/+/+"
            )
    return value


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    client_id: str = "hookflash"
    username: str = ""
    password: SecretStr | None = None
    password_env: str = ""
    keepalive_s: int = Field(default=30, ge=5)
    subscribe: Literal["per-device", "wildcard"] = "per-device"
    wildcard_filter: str = "hookflash/+/+"
    qos: Literal[0, 1] = 1
    max_payload_bytes: int = Field(default=65536, ge=64)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("mqtt host must not be empty")
        return value

    @field_validator("wildcard_filter")
    @classmethod
    def _wildcard_filter(cls, value: str) -> str:
        return check_subscription_filter(value)

    def resolved_password(self) -> str | None:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"mqtt.password_env names {self.password_env}, which is not set")
            return value
        return self.password.get_secret_value() if self.password else None


class SnmpCredential(_Section):
    community: SecretStr | None = None
    community_env: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> SnmpCredential:
        if (self.community is None) == (not self.community_env):
            raise ValueError("give exactly one of community or community_env")
        return self

    def resolved(self, name: str) -> str:
        if self.community_env:
            value = os.environ.get(self.community_env)
            if value is None:
                raise ConfigError(
                    f"credentials.{name}.community_env names {self.community_env}, which is not set"
                )
            return value
        assert self.community is not None
        return self.community.get_secret_value()


def _from_env(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{what} names environment variable {variable}, which is not set")
    return value


class WebhookConfig(_Section):
    """An outbound deactivation webhook; the HMAC secret comes from the environment."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,31}$")
    url: str = Field(pattern=r"^https?://")
    secret_env: str
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    def secret(self) -> bytes:
        return _from_env(self.secret_env, f"webhooks.{self.name}.secret_env").encode()


class ApiConfig(_Section):
    """The HTTP API for billing/CRM deactivation calls, served by `hookflash run`."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8480, gt=0, lt=65536)
    token_env: str = "HOOKFLASH_API_TOKEN"

    def token(self) -> str:
        return _from_env(self.token_env, "api.token_env")


class ServiceConfig(_Section):
    data_dir: Path = Path("./hookflash-data")
    retention_policy: Path | None = None
    profile_dirs: list[Path] = []
    lifecycle_poll_s: float = Field(default=0.05, gt=0, le=1)
    sweep_interval_s: float = Field(default=3600, gt=0)
    snmp: SnmpConfig = SnmpConfig()
    mqtt: MqttConfig = MqttConfig()
    credentials: dict[str, SnmpCredential] = {}
    webhooks: list[WebhookConfig] = []
    api: ApiConfig = ApiConfig()
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)

    def communities(self) -> dict[str, str]:
        return {name: cred.resolved(name) for name, cred in self.credentials.items()}


def config_from_dict(data: dict[str, Any], origin: str) -> ServiceConfig:
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe(exc, 'config')}") from None


def load_config(path: Path | None = None) -> ServiceConfig:
    """Load a config file; relative paths inside it are relative to the file."""
    if path is None:
        text = resources.files("collector.config").joinpath("default.toml").read_text()
        return config_from_dict(tomllib.loads(text), "default config")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = config_from_dict(data, str(path))
    base = path.parent
    return config.model_copy(
        update={
            "data_dir": base / config.data_dir,
            "retention_policy": base / config.retention_policy if config.retention_policy else None,
            "profile_dirs": [base / d for d in config.profile_dirs],
        }
    )
