"""One InfluxDB bucket per retention class, with the class's retention as the bucket's
expiry rule: find what is missing or has drifted, create what is missing, and (only when
asked) bring drifted buckets back to the policy.

A duration class ("30d") expires after that many seconds. A "while-active" class must not
expire by age (P3: kept while the account is active; erasure by predicate ends it), so its
bucket has infinite retention (everySeconds = 0). InfluxDB drops data by whole shard
group, so a point may outlive its expiry by up to one shard group duration (1 h for
retentions under 2 days, 1 day up to 6 months).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules
from influxdb_client.rest import ApiException

from collector.core.records import RetentionClass
from collector.sinks.influx.status import server_message

Action = Literal["ok", "missing", "created", "drift", "fixed"]


class BucketError(Exception):
    """The server could not be asked or refused (unreachable, 401, unknown org); the message
    says which, never the token."""


@dataclass(frozen=True)
class BucketCheck:
    retention_class: str
    bucket: str
    want_s: int  # 0: infinite
    have_s: int | None  # None: no such bucket
    action: Action

    @property
    def unresolved(self) -> bool:
        """Still differs from the policy after this run."""
        return self.action in ("missing", "drift")

    def row(self) -> dict[str, Any]:
        return {
            "class": self.retention_class,
            "bucket": self.bucket,
            "policy": describe_seconds(self.want_s),
            "server": "-" if self.have_s is None else describe_seconds(self.have_s),
            "action": self.action,
        }


def retention_seconds(cls: RetentionClass) -> int:
    return 0 if cls.ttl is None else int(cls.ttl.total_seconds())


def describe_seconds(seconds: int) -> str:
    if seconds == 0:
        return "infinite"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rule(seconds: int) -> Any:
    return BucketRetentionRules(type="expire", every_seconds=seconds)  # type: ignore[no-untyped-call]


def _expiry(bucket: Any) -> int:
    for rule in bucket.retention_rules or []:
        if rule.type == "expire":
            return int(rule.every_seconds or 0)
    return 0


class BucketAdmin:
    """The buckets and orgs API of one server (InfluxDB 2; VictoriaMetrics has none)."""

    def __init__(self, client: InfluxDBClient, url: str, token: str) -> None:
        self._client = client
        self._url = url
        self._token = token

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except ApiException as exc:
            reason = server_message(exc.body or exc.reason, self._token)
            hint = " (check the token and its permissions)" if exc.status in (401, 403) else ""
            raise BucketError(f"{what}: {self._url} answered HTTP {exc.status}{hint}: {reason}") from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise BucketError(f"{what}: cannot reach {self._url} ({type(exc).__name__})") from None

    def org_id(self, org: str) -> str:
        orgs = self._call(
            f"looking up org {org!r}", self._client.organizations_api().find_organizations, org=org
        )
        found = [o for o in orgs or [] if o.name == org]
        if not found:
            raise BucketError(f"org {org!r} not found on {self._url} (or the token may not read it)")
        return str(found[0].id)

    def find(self, org_id: str, name: str) -> Any | None:
        found = self._call(
            f"looking up bucket {name!r}", self._client.buckets_api().find_buckets, org_id=org_id, name=name
        )
        matches = [b for b in (found.buckets or []) if b.name == name]
        return matches[0] if matches else None

    def create(self, org_id: str, name: str, seconds: int, description: str) -> None:
        rule = _rule(seconds)
        self._call(
            f"creating bucket {name!r}",
            self._client.buckets_api().create_bucket,
            bucket_name=name,
            org=org_id,
            retention_rules=[rule],
            description=description,
        )

    def set_retention(self, bucket: Any, seconds: int) -> None:
        bucket.retention_rules = [_rule(seconds)]
        self._call(f"updating bucket {bucket.name!r}", self._client.buckets_api().update_bucket, bucket)


def ensure_buckets(
    admin: BucketAdmin,
    org: str,
    classes: Mapping[str, RetentionClass],
    names: Mapping[str, str],
    *,
    dry_run: bool = False,
    fix: bool = False,
) -> list[BucketCheck]:
    """Check every class's bucket; create the missing ones (unless `dry_run`) and, with
    `fix`, set the policy's retention on drifted ones. Raises BucketError."""
    org_id = admin.org_id(org)
    checks = []
    for name, cls in classes.items():
        bucket_name, want = names[name], retention_seconds(cls)
        bucket = admin.find(org_id, bucket_name)
        have = None if bucket is None else _expiry(bucket)
        action: Action
        if bucket is None:
            action = "missing"
            if not dry_run:
                about = f"hookflash retention class {name}: {cls.description}" if cls.description else name
                admin.create(org_id, bucket_name, want, about[:500])
                action = "created"
        elif have == want:
            action = "ok"
        else:
            action = "drift"
            if fix and not dry_run:
                admin.set_retention(bucket, want)
                action = "fixed"
        checks.append(BucketCheck(name, bucket_name, want, have, action))
    return checks
