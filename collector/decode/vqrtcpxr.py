"""RFC 6035 "vq-rtcpxr" reports, the bodies of the SIP PUBLISH requests phones send about
their calls, and the codec that makes `call_quality` observations of them.

A report is a first line naming its type (`VQSessionReport`, `VQSessionReport: CallTerm`,
`VQIntervalReport`, `VQAlertReport: Type=… Severity=… Dir=…`), header lines of the call
(`CallID:`, `LocalID:`, `RemoteID:`, `LocalMAC:`, …), then a `LocalMetrics:` and/or a
`RemoteMetrics:` block of `Name: k=v k=v` lines (`JitterBuffer: JBA=3 JBN=60 …`). Each
block becomes one observation, `direction` "local" (what the reporting phone received) or
"remote" (what its peer received, as RTCP XR told it).

Vendors vary: `Name:k=v` without a space, `k=v` pairs on lines of their own inside a
block, CRLF or LF, parameters in any order. Unknown lines and parameters are ignored (P2:
only the listed data is kept). "Unavailable" is an absent parameter or the reserved value
RFC 3611 gives the metric (127 for MOS x10 and R factors, 65535 for the jitter-buffer and
delay figures, 255 for the 8-bit rates): those fields are simply not recorded.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.core.errors import Rejected
from collector.core.records import FieldValue, Kind, Observation, Received
from collector.decode.base import Decoded, Located
from collector.profiles.model import DeviceProfile
from provisioning.models import Transport, normalize_aor, normalize_mac

_REPORT_TYPES = {"VQSessionReport": "session", "VQIntervalReport": "interval", "VQAlertReport": "alert"}
_BLOCKS = {"localmetrics": "local", "remotemetrics": "remote"}
_HEADERS = {"callid", "localid", "remoteid", "origid", "localmac", "remotemac", "dialogid"}
_PAIR = re.compile(r'([A-Za-z][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
MAX_LINES = 200
_FUTURE_S = 300  # a phone's clock may run a little ahead


@dataclass(frozen=True)
class Metric:
    """One RFC 6035 parameter: the field it is stored as, its scale to the field's unit,
    the values that mean "unavailable", and the plausible range after scaling."""

    field: str
    low: float
    high: float
    unavailable: frozenset[float] = frozenset()
    as_int: bool = False


def _m(name: str, low: float, high: float, *unavailable: float, as_int: bool = False) -> Metric:
    return Metric(name, low, high, frozenset(unavailable), as_int)


# (block line, parameter) -> how it is stored. Units: RFC 6035 section 4.
METRICS: Mapping[tuple[str, str], Metric] = {
    ("jitterbuffer", "JBA"): _m(
        "jb_adaptive", 0, 3, as_int=True
    ),  # 0 unknown, 1 reserved, 2 non-adaptive, 3 adaptive
    ("jitterbuffer", "JBR"): _m("jb_rate", 0, 15, as_int=True),
    ("jitterbuffer", "JBN"): _m("jb_nominal_ms", 0, 65534, 65535, as_int=True),
    ("jitterbuffer", "JBM"): _m("jb_max_ms", 0, 65534, 65535, as_int=True),
    ("jitterbuffer", "JBX"): _m("jb_abs_max_ms", 0, 65534, 65535, as_int=True),
    ("packetloss", "NLR"): _m("loss_pct", 0, 100, 255),  # network packet loss rate, %
    ("packetloss", "JDR"): _m("discard_pct", 0, 100, 255),  # jitter buffer discard rate, %
    ("burstgaploss", "BLD"): _m("burst_density_pct", 0, 100, 255),
    ("burstgaploss", "BD"): _m("burst_ms", 0, 65534, 65535, as_int=True),
    ("burstgaploss", "GLD"): _m("gap_density_pct", 0, 100, 255),
    ("burstgaploss", "GD"): _m("gap_ms", 0, 65534, 65535, as_int=True),
    ("burstgaploss", "GMIN"): _m("gmin", 1, 255, as_int=True),
    ("delay", "RTD"): _m("rtt_ms", 0, 65534, 65535, as_int=True),  # round-trip delay
    ("delay", "ESD"): _m("end_system_delay_ms", 0, 65534, 65535, as_int=True),
    ("delay", "OWD"): _m("one_way_delay_ms", 0, 65534, 65535, as_int=True),
    ("delay", "SOWD"): _m("symm_one_way_delay_ms", 0, 65534, 65535, as_int=True),
    ("delay", "IAJ"): _m("jitter_ms", 0, 60000, 65535),  # inter-arrival jitter, as SNMP/MQTT's jitter_ms
    ("delay", "MAJ"): _m("mean_abs_jitter_ms", 0, 60000, 65535),
    ("signal", "SL"): _m("signal_dbm0", -120, 0, 127, as_int=True),
    ("signal", "NL"): _m("noise_dbm0", -120, 0, 127, as_int=True),
    ("signal", "RERL"): _m("rerl_db", 0, 126, 127, as_int=True),
    ("qualityest", "RLQ"): _m("r_factor", 0, 100, 127, as_int=True),  # listening R factor
    ("qualityest", "RCQ"): _m("r_factor_cq", 0, 100, 127, as_int=True),
    ("qualityest", "EXTRI"): _m("ext_r_in", 0, 100, 127, as_int=True),
    ("qualityest", "EXTRO"): _m("ext_r_out", 0, 100, 127, as_int=True),
    ("qualityest", "MOSLQ"): _m("mos", 1, 5, 127, 12.7, 0),  # listening MOS: the fleet's "mos"
    ("qualityest", "MOSCQ"): _m("mos_cq", 1, 5, 127, 12.7, 0),
}
_TEXT = {("sessiondesc", "PD"): "codec", ("qualityest", "QoEEstAlg"): "mos_algorithm"}
_INT_TEXT = {("sessiondesc", "PT"): "payload_type", ("sessiondesc", "SR"): "sample_rate"}


class BadReport(Rejected):
    """A body that breaks the report grammar: the line (1-based) and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"vq-rtcpxr line {line}: {reason}")
        self.line = line


@dataclass
class Report:
    """A parsed report: its type, the call's header lines, and one parameter map per
    metrics block, by direction."""

    type: str  # session, interval, alert
    call_term: bool
    headers: dict[str, str]
    alert: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)

    @property
    def local_mac(self) -> str | None:
        raw = self.headers.get("localmac")
        if not raw:
            return None
        try:
            return normalize_mac(raw)
        except ValueError:
            return None


def parse_report(body: bytes) -> Report:
    """The report in `body`; raises BadReport naming the line and the reason."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadReport(body[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BadReport(1, "empty report")
    if len(lines) > MAX_LINES:
        raise BadReport(MAX_LINES + 1, f"more than {MAX_LINES} lines")
    report = _first_line(lines[0])
    block: dict[tuple[str, str], str] | None = None
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        name, colon, rest = line.partition(":")
        key = name.strip().lower()
        if colon and key in _BLOCKS and not rest.strip():
            direction = _BLOCKS[key]
            if direction in report.blocks:
                raise BadReport(number, f"a second {name.strip()} block")
            block = report.blocks[direction] = {}
        elif colon and key in _HEADERS and (block is None or key == "dialogid"):
            value = rest.strip()
            if not value:
                raise BadReport(number, f"{name.strip()} has no value")
            report.headers[key] = value
            block = None if key == "dialogid" else block
        elif colon and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name.strip()):
            if block is not None:
                _pairs(number, key, rest, block)
            # else: a header line hookflash does not keep (LocalGroup, LocalAddr, x-…)
        elif "=" in line and block is not None:  # a vendor's bare k=v line inside a block
            _pairs(number, "", line, block)
        else:
            raise BadReport(number, f"neither 'Name: value' nor 'k=v': {line[:60]!r}")
    if "callid" not in report.headers:
        raise BadReport(len(lines), "no CallID line")
    if not report.blocks:
        raise BadReport(len(lines), "neither a LocalMetrics nor a RemoteMetrics block")
    return report


def _first_line(line: str) -> Report:
    name, _, rest = line.strip().partition(":")
    kind = _REPORT_TYPES.get(name.strip())
    if kind is None:
        raise BadReport(1, f"not a VQSessionReport, VQIntervalReport or VQAlertReport: {line[:60]!r}")
    rest = rest.strip()
    report = Report(kind, kind == "session" and rest.lower() == "callterm", {})
    if kind == "alert":
        report.alert = {k.lower(): v for k, v in _PAIR.findall(rest)}
    elif rest and rest.lower() != "callterm":
        raise BadReport(1, f"unexpected after {name.strip()}: {rest[:40]!r}")
    return report


def _pairs(number: int, line: str, text: str, into: dict[tuple[str, str], str]) -> None:
    rest = text
    for match in _PAIR.finditer(text):
        into[(line, match.group(1))] = match.group(2).strip('"')
        rest = rest.replace(match.group(0), "", 1)
    if rest.strip():
        raise BadReport(number, f"not k=v: {rest.strip()[:40]!r}")


def _block_fields(number_of: Mapping[tuple[str, str], str]) -> dict[str, FieldValue]:
    """The fields of one metrics block; bare k=v lines are matched by parameter name."""
    fields: dict[str, FieldValue] = {}
    for (line, param), metric in METRICS.items():
        found = number_of.get((line, param))
        if found is None and (("", param) in number_of):
            found = number_of[("", param)]
        if found is None or found == "":
            continue
        try:
            value = float(found)
        except ValueError:
            raise Rejected(f"{param}={found[:20]!r} is not a number") from None
        if not math.isfinite(value):
            raise Rejected(f"{param}={found[:20]!r} is not a finite number")
        if value in metric.unavailable:
            continue
        if not metric.low <= value <= metric.high:
            raise Rejected(f"{metric.field} ({param}) {value:g} is outside {metric.low:g}..{metric.high:g}")
        fields[metric.field] = int(value) if metric.as_int else value
    for (line, param), name in _TEXT.items():
        text = number_of.get((line, param)) or number_of.get(("", param))
        if text:
            fields[name] = text[:32]
    for (line, param), name in _INT_TEXT.items():
        digits = number_of.get((line, param)) or number_of.get(("", param))
        if digits and digits.isdigit() and len(digits) < 10:
            fields[name] = int(digits)
    return fields


def _stamp(block: Mapping[tuple[str, str], str], param: str) -> datetime | None:
    raw = block.get(("timestamps", param)) or block.get(("", param))
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"Timestamps {param}={raw[:40]!r} is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def split_origin(origin: str) -> tuple[str, str]:
    """The SIP source's origin text is `<From AOR> from <host>:<port>`."""
    aor, _, peer = origin.rpartition(" from ")
    return aor, peer


class VqRtcpxrCodec:
    """The SIP source's codec: the device is named by the request's From AOR (registry
    column `sip_aor`), else by the report's LocalMAC, else by the address it came from."""

    transport = Transport.SIP
    uses_profile = False  # RFC 6035 is the same for every vendor

    def locate(self, item: Received) -> Located:
        assert isinstance(item.payload, bytes)
        aor, peer = split_origin(item.origin)
        host = peer.rsplit(":", 1)[0].strip("[]")
        try:  # a broken body is quarantined for the phone its request came from
            report: Report | BadReport = parse_report(item.payload)
        except BadReport as exc:
            report = exc
        mac = report.local_mac if isinstance(report, Report) else None
        return Located(mac, host or None, Kind.CALL_QUALITY.value, report, normalize_aor(aor))

    def decode(
        self, profile: DeviceProfile | None, device_id: str, item: Received, located: Located | None
    ) -> Decoded:
        report = located.document if located is not None else None
        if isinstance(report, BadReport):
            raise report
        if not isinstance(report, Report):
            assert isinstance(item.payload, bytes)
            report = parse_report(item.payload)
        observations: list[Observation] = []
        refused: list[str] = []
        for direction, block in report.blocks.items():
            try:
                observations.append(self._observation(report, direction, block, device_id, item))
            except Rejected as exc:
                refused.append(f"{direction} metrics: {exc.reason}")
        return observations, refused

    def _observation(
        self,
        report: Report,
        direction: str,
        block: Mapping[tuple[str, str], str],
        device_id: str,
        item: Received,
    ) -> Observation:
        fields = _block_fields(block)
        stop, start = _stamp(block, "STOP"), _stamp(block, "START")
        observed = stop or start or item.received_at
        if (observed - item.received_at).total_seconds() > _FUTURE_S:
            raise Rejected(f"Timestamps {observed.isoformat()} is in the future")
        if start is not None and stop is not None:
            fields["duration_s"] = max(0, int((stop - start).total_seconds()))
        call_id = report.headers["callid"][:128]
        fields.update(direction=direction, report=report.type, call_id=call_id)
        if report.call_term:
            fields["call_term"] = True
        if "remoteid" in report.headers:
            fields["remote_id"] = report.headers["remoteid"][:128]
        if report.alert:
            fields.update(
                {f"alert_{k}": v[:32] for k, v in report.alert.items() if k in ("type", "severity", "dir")}
            )
        key = "|".join((device_id, call_id, report.type, direction, observed.isoformat()))
        return Observation(
            device_id,
            Kind.CALL_QUALITY,
            observed,
            fields,
            "sip",
            dedupe_key="sip:" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest(),
        )
