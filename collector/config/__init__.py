"""Service configuration (TOML), validated at load. Secrets are SecretStr: never printed."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from collector.config.alerts import AlertsConfig
from collector.config.sip import SipConfig
from collector.config.snmp import (
    ResolvedCredential,
    SnmpConfig,
    SnmpCredential,
    TrapConfig,
    from_env,
)
from collector.config.views import ViewsConfig
from collector.core.errors import ConfigError
from provisioning.database_url import DEFAULT_PASSWORD_ENV, check_database_url
from provisioning.validation import describe, validate_strictly

__all__ = [
    "ApiConfig",
    "ApiToken",
    "ConfigError",
    "InfluxConfig",
    "MqttConfig",
    "ResolvedCredential",
    "ResolvedToken",
    "ServiceConfig",
    "SipConfig",
    "SnmpConfig",
    "SnmpCredential",
    "TrapConfig",
    "WebhookConfig",
    "config_from_dict",
    "load_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    # Wildcard mode only: subscribe as $share/<group>/<filter> so several hookflash
    # instances split one stream (MQTT 5 / mosquitto 2).
    shared_group: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]*$")
    # Where a message's device comes from: the registry address as topic root
    # (`<address>/<kind>`), one level of the topic (`device_id_level`, counted from 0; the
    # kind is the last level), or the payload's `device_id` and `kind` fields (one shared
    # topic for every device). The last two need subscribe = "wildcard".
    device_id_from: Literal["topic-root", "topic-level", "payload"] = "topic-root"
    device_id_level: int = Field(default=1, ge=0, le=32)
    # Payload mode only, and required there: the topic level the broker binds to the device's
    # login (mosquitto ACL `pattern write hookflash/%u/#`, each device logging in with its MAC
    # as user name). A payload whose `device_id` is not that level's device is refused: without
    # the binding any device could write records as any other.
    payload_identity_level: int | None = Field(default=None, ge=0, le=32)
    qos: int = Field(default=1, ge=0, le=1, description="0 or 1 (QoS 2 is not offered)")
    max_payload_bytes: int = Field(default=65536, ge=64)
    protocol: Literal["3.1.1", "5"] = "5"
    # A persistent session keeps QoS 1 messages at the broker while hookflash is down;
    # with QoS 1 a message is acknowledged only once it is stored.
    persistent_session: bool = True
    session_expiry_s: int = Field(default=86400, ge=0)
    receive_maximum: int = Field(default=1000, ge=1, le=65535, description="unacknowledged QoS 1 messages")
    tls: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

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

    @model_validator(mode="after")
    def _mapping_needs_wildcard(self) -> MqttConfig:
        if self.device_id_from != "topic-root" and self.subscribe != "wildcard":
            raise ValueError(f'device_id_from = {self.device_id_from!r} needs subscribe = "wildcard"')
        if self.device_id_from == "payload" and self.payload_identity_level is None:
            raise ValueError(
                'device_id_from = "payload" lets any device write records as any other unless the '
                "broker binds each device to a topic level: set payload_identity_level to the level "
                "its ACL binds to the device's login (mosquitto: `pattern write hookflash/%u/#`; README)"
            )
        return self

    def resolved_password(self) -> str | None:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"mqtt.password_env names {self.password_env}, which is not set")
            return value
        return self.password.get_secret_value() if self.password else None


class WebhookConfig(_Section):
    """An outbound deactivation webhook; the HMAC secret comes from the environment."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,31}$")
    url: str = Field(pattern=r"^https?://")
    secret_env: str
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    def secret(self) -> bytes:
        return from_env(self.secret_env, f"webhooks.{self.name}.secret_env").encode()


class SpoolConfig(_Section):
    """The disk spool in front of each remote sink (InfluxDB): where batches wait while the
    server is down or slow. Under `<data_dir>/spool/<sink>`."""

    max_mb: int = Field(
        default=1024,
        ge=1,
        description="bound per sink; when full, new records "
        "for that sink are refused and reported (the embedded store keeps them)",
    )
    flush_on_stop_s: float = Field(default=5.0, ge=0, le=300)


Scope = Literal["read", "deactivate", "admin"]
MIN_TOKEN_LENGTH = 24


class ApiToken(_Section):
    """One bearer token: its name (for the audit log), what it may do, and the environment
    variable holding it. `read`: the NOC views, the dashboard, /metrics and /docs;
    `deactivate`: suspend, set inactive, revoke, remove a device, and read receipts;
    `admin`: all of that and reactivation."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    scopes: list[Scope] = Field(min_length=1)
    token_env: str = Field(min_length=1)


@dataclass(frozen=True)
class ResolvedToken:
    name: str
    scopes: frozenset[str]
    secret: str = field(repr=False)


class ApiConfig(_Section):
    """The HTTP API: deactivation hooks for billing/CRM and the NOC's views, served by
    `hookflash run`. Every route but /healthz needs a token with the route's scope."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8480, ge=0, lt=65536, description="0: any free port")
    # One admin token (named "default"); `tokens` names several, each with its scopes.
    token_env: str = "HOOKFLASH_API_TOKEN"
    tokens: list[ApiToken] = []
    auth_reads: bool = True  # false: the fleet, device, rollout and alert views need no token
    auth_metrics: bool = True  # false: /metrics needs no token (a scraper on a closed network)
    open_docs: bool = False  # true: /docs and /openapi.json need no token
    # Deactivation requests per token: a burst of this many, refilled at this rate per second.
    rate_burst: int = Field(default=20, ge=1, le=10_000)
    rate_per_s: float = Field(default=5.0, gt=0, le=10_000)
    tls_cert: Path | None = None  # PEM certificate (chain) and key: the API speaks HTTPS
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("api.tls_cert and api.tls_key go together")
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("api.tokens: each token needs a name of its own")
        return self

    def token(self) -> str:
        return from_env(self.token_env, "api.token_env")

    def resolved_tokens(self) -> list[ResolvedToken]:
        """Every token with its secret, checked for length; never printed."""
        wanted = self.tokens or [ApiToken(name="default", scopes=["admin"], token_env=self.token_env)]
        resolved = []
        for n, t in enumerate(wanted):
            where = f"api.tokens[{n}].token_env" if self.tokens else "api.token_env"
            secret = from_env(t.token_env, where)
            if len(secret) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"{where}: the token {t.name!r} ({t.token_env}) is {len(secret)} characters; "
                    f"at least {MIN_TOKEN_LENGTH} are needed (e.g. `openssl rand -hex 24`)"
                )
            resolved.append(ResolvedToken(t.name, frozenset(t.scopes), secret))
        secrets = [r.secret for r in resolved]
        if len(set(secrets)) != len(secrets):
            raise ConfigError("api.tokens: two tokens have the same value; give each its own")
        return resolved


_BUCKET_NAME = r'^[^_"\x00-\x1f][^"\x00-\x1f]{0,254}$'  # InfluxDB: no leading "_", no '"'


class InfluxConfig(_Section):
    """InfluxDB v2 (or any server speaking its write API) as a second sink: one bucket per
    retention class, named `buckets[class]` or else `<bucket_prefix><class>`."""

    enabled: bool = False
    url: str = Field(default="http://127.0.0.1:8086", pattern=r"^https?://")
    org: str = Field(default="hookflash", min_length=1)
    token_env: str = "HOOKFLASH_INFLUX_TOKEN"
    bucket_prefix: str = Field(default="hookflash-", pattern=r"^([A-Za-z0-9\-][A-Za-z0-9_\-]*)?$")
    buckets: dict[str, Annotated[str, Field(pattern=_BUCKET_NAME)]] = {}
    batch_lines: int = Field(default=5000, ge=1, le=100_000, description="lines per HTTP post, at most")
    gzip_level: int = Field(default=1, ge=0, le=9, description="0: posts are not compressed")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Which server it is, for erasure: InfluxDB's /api/v2/delete, VictoriaMetrics'
    # /api/v1/admin/tsdb/delete_series; "other" has no delete hookflash knows.
    server: Literal["influxdb", "victoriametrics", "other"] = "influxdb"
    # "delete": an account's data is deleted there when its retention ends (and the
    # receipt is done only once the server confirmed). "server_retention": the server's
    # own retention bounds the data and hookflash deletes nothing there; receipts say so.
    # A server that cannot delete needs "server_retention", or start-up is refused.
    erasure: Literal["delete", "server_retention"] = "delete"

    @model_validator(mode="after")
    def _can_erase(self) -> InfluxConfig:
        if self.enabled and self.server == "other" and self.erasure == "delete":
            raise ValueError(
                'influx.server = "other" has no delete API hookflash knows, so an account\'s data '
                'could not be erased there (P5): set influx.erasure = "server_retention" if the '
                "server's own retention bounds it, or use InfluxDB or VictoriaMetrics"
            )
        return self

    def token(self) -> str:
        return from_env(self.token_env, "influx.token_env")

    def bucket_names(self, classes: Sequence[str], policy: str = "the retention policy") -> dict[str, str]:
        """The bucket of each retention class. Fails on a class in `buckets` that the policy
        does not define, and on two classes sharing a bucket (their retention would clash)."""
        unknown = sorted(set(self.buckets) - set(classes))
        if unknown:
            raise ConfigError(
                f"influx.buckets names unknown retention class(es) {', '.join(map(repr, unknown))}; "
                f"{policy} defines: {', '.join(classes)}"
            )
        names = {cls: self.buckets.get(cls) or f"{self.bucket_prefix}{cls}" for cls in classes}
        shared = sorted({b for b in names.values() if list(names.values()).count(b) > 1})
        if shared:
            raise ConfigError(
                f"influx.buckets: bucket(s) {', '.join(map(repr, shared))} would hold several retention "
                "classes; each class needs a bucket of its own"
            )
        return names


class ServiceConfig(_Section):
    data_dir: Path = Path("./hookflash-data")
    # Unset: the registry is registry.db in data_dir. Set: in this PostgreSQL database.
    database_url: str | None = None
    database_password_env: str = Field(
        default=DEFAULT_PASSWORD_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    retention_policy: Path | None = None
    profile_dirs: list[Path] = []
    lifecycle_poll_s: float = Field(default=0.05, gt=0, le=1)
    sweep_interval_s: float = Field(default=3600, gt=0)
    snmp: SnmpConfig = SnmpConfig()
    mqtt: MqttConfig = MqttConfig()
    sip: SipConfig = SipConfig()
    snmp_traps: TrapConfig = TrapConfig()
    credentials: dict[str, SnmpCredential] = {}
    webhooks: list[WebhookConfig] = []
    api: ApiConfig = ApiConfig()
    influx: InfluxConfig = InfluxConfig()
    spool: SpoolConfig = SpoolConfig()
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)
    views: ViewsConfig = ViewsConfig()
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str | None) -> str | None:
        return check_database_url(url)

    def resolved_credentials(self) -> dict[str, ResolvedCredential]:
        return {name: cred.resolved(name) for name, cred in self.credentials.items()}

    def trap_credentials(self) -> list[ResolvedCredential]:
        """The credential sets a trap or inform may come with (`snmp_traps.credentials_from`
        names, or all): v2c communities and v3 users."""
        names = self.snmp_traps.credentials_from or list(self.credentials)
        unknown = [n for n in names if n not in self.credentials]
        if unknown:
            names_text = ", ".join(map(repr, unknown))
            raise ConfigError(f"snmp_traps.credentials_from: no credential set {names_text}")
        return [self.credentials[n].resolved(n) for n in names]


def config_from_dict(data: dict[str, Any], origin: str) -> ServiceConfig:
    try:
        return validate_strictly(ServiceConfig, data)
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
            "sip": config.sip.model_copy(
                update={
                    "tls_cert": base / config.sip.tls_cert if config.sip.tls_cert else None,
                    "tls_key": base / config.sip.tls_key if config.sip.tls_key else None,
                }
            ),
            "api": config.api.model_copy(
                update={
                    "tls_cert": base / config.api.tls_cert if config.api.tls_cert else None,
                    "tls_key": base / config.api.tls_key if config.api.tls_key else None,
                }
            ),
        }
    )
