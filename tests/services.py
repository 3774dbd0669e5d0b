"""Real mosquitto / net-snmp snmpd processes for integration tests, on 127.0.0.1 only.

Plain Python (no pytest): usable from conftest fixtures, benchmarks and ad-hoc scripts.

Mosquitto 2.0.x log lines (``<epoch>: <message>``) that the parsers rely on::

    New client connected from 127.0.0.1:37117 as <client-id> (p2, c1, k60[, u'<user>']).
    <client-id> <qos> <topic-filter>     # log_type subscribe   (one line per filter)
    <client-id> <topic-filter>           # log_type unsubscribe (one line per filter)

Only the QoS bits of MQTT v5 subscription options are logged. Sub/unsub lines carry no
keyword, so they are recognised by a client id seen in an earlier "New client connected"
line. They are written (and flushed) before mosquitto sends the SUBACK/UNSUBACK.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, NoReturn, Protocol, Self

from certs import TlsFiles

HOST = "127.0.0.1"
SYS_UPTIME = ".1.3.6.1.2.1.1.3.0"
SNMP_IN_PKTS = ".1.3.6.1.2.1.11.1.0"
SNMP_TOTAL_REQ_VARS = ".1.3.6.1.2.1.11.13.0"  # snmpInTotalReqVars: variables asked for
# Types net-snmp 5.9 `override` can serve (utilities/override.c). "gauge" is our alias for
# "uinteger" (Gauge32); snmpd rejects counter64, ipaddress, opaque, nsap, bit_str itself.
OVERRIDE_TYPES = frozenset(
    {"integer", "uinteger", "unsigned", "counter", "timeticks", "octet_str", "object_id", "null"}
)
_NUMERIC_OID = re.compile(r"\.?\d+(\.\d+)+")
_NO_OVERRIDES: Mapping[str, tuple[str, str | int]] = MappingProxyType({})
SubEvent = tuple[Literal["subscribe", "unsubscribe"], str, str]
_CONNECTED = re.compile(r"New client connected from \S+ as (.+) \(p\d+, c\d, k\d+(, u'.*')?\)\.$")


def free_port(kind: Literal["tcp", "udp"]) -> int:
    """A currently free 127.0.0.1 port (bind to 0, read, close: racy but good enough)."""
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def answers_ok(url: str) -> bool:
    """Whether an HTTP server answers `url` with 200 now (a readiness check)."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"<{path} does not exist>"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class _Service:
    """Subprocess lifecycle: write config, start, poll readiness, SIGTERM on stop/exit."""

    name = "service"

    def __init__(self, workdir: Path, port: int | None, kind: Literal["tcp", "udp"]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port if port is not None else free_port(kind)
        self.config_path = self.workdir / f"{self.name}.conf"
        self.log_path = self.workdir / f"{self.name}.log"
        self.output_path = self.workdir / f"{self.name}.out"  # the process' stdout + stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # log size in bytes when the current process was started

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Self:
        raise NotImplementedError

    def _launch(
        self,
        config: str,
        cmd: list[str],
        ready: Callable[[], bool],
        timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} on port {self.port} is already running")
        self.config_path.write_text(config)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.output_path.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while (code := self._proc.poll()) is not None or not ready():
            if code is not None or time.monotonic() > deadline:
                self.stop()
                self._fail(
                    f"exited with code {code}" if code is not None else f"not ready within {timeout}s", cmd
                )
            time.sleep(0.05)

    def _fail(self, why: str, cmd: list[str]) -> NoReturn:
        raise RuntimeError(
            f"{self.name} on {self.host}:{self.port} {why}\ncommand: {' '.join(cmd)}"
            f"\n--- {self.log_path} (tail) ---\n{_tail(self.log_path)}"
            f"\n--- {self.output_path} (tail) ---\n{_tail(self.output_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Mosquitto(_Service):
    """mosquitto broker on 127.0.0.1:<port>; its log file is appended to across restarts."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        extra: Sequence[str] = (),
        config_file: Path | None = None,
        acl_extra: Sequence[str] = (),
    ):
        """`users` adds a password listener (`password_port`); `tls` adds a TLS listener
        (`tls_port`) that also requires a user. The plain listener stays anonymous.
        `extra`: more mosquitto.conf lines, e.g. "queue_qos0_messages true".
        `config_file`: run this mosquitto.conf (docker/mosquitto.conf) as it is, but for
        its listener ports (the first plain, the second `tls_port`), persistence folder, log,
        TLS files (`tls`), password file (`users`) and ACL (the `mosquitto.acl` beside it,
        plus `acl_extra` lines), which are rewritten to this run's."""
        super().__init__(workdir, port, "tcp")
        self.config_file = config_file
        self.persistence = persistence
        self.extra = list(extra)
        self.acl_extra = list(acl_extra)
        self.users = dict(users or {})
        self.tls = tls
        self.password_port = free_port("tcp") if self.users else None
        self.tls_port = free_port("tcp") if tls is not None else None

    def start(self, timeout: float = 10.0) -> Self:
        log_types = ("error", "warning", "notice", "information", "subscribe", "unsubscribe")
        logging = [f"log_dest file {self.log_path}", *(f"log_type {t}" for t in log_types)]
        if self.config_file is not None:
            config = self._rewritten(self.config_file.read_text(), logging)
            if os.geteuid() == 0:
                config.append("user root")
            self._launch(
                "\n".join(config) + "\n",
                ["/usr/sbin/mosquitto", "-c", str(self.config_path)],
                self._ready,
                timeout,
            )
            return self
        config = [
            "per_listener_settings true",
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            *self._secure_listeners(),
            f"log_dest file {self.log_path}",
            *(f"log_type {t}" for t in log_types),  # only the 1st word of a log_type line counts
            "connection_messages true",
            "max_queued_messages 1000000",
            f"persistence {str(self.persistence).lower()}",
            f"persistence_location {self.workdir}/",  # mosquitto appends "mosquitto.db" as-is
            *self.extra,
        ]
        if os.geteuid() == 0:  # else it drops to user "mosquitto", who cannot write the workdir
            config.append("user root")
        cmd = ["/usr/sbin/mosquitto", "-c", str(self.config_path)]
        self._launch("\n".join(config) + "\n", cmd, self._ready, timeout)
        return self

    def _rewritten(self, text: str, logging: list[str]) -> list[str]:
        lines: list[str] = []
        listeners = 0
        tls = self.tls
        for line in text.splitlines():
            word = line.split(" ", 1)[0]
            if word == "listener":
                listeners += 1
                if listeners > 1 and (tls is None or self.tls_port is None):
                    raise ValueError(f"{self.config_file} has a second (TLS) listener: give tls=")
                lines.append(f"listener {self.port if listeners == 1 else self.tls_port} {HOST}")
            elif word in ("cafile", "certfile", "keyfile"):
                if tls is None:
                    raise ValueError(f"{self.config_file} names TLS files: give tls=")
                files = {"cafile": tls.ca_cert, "certfile": tls.server_cert, "keyfile": tls.server_key}
                lines.append(f"{word} {files[word]}")
            elif word == "password_file":
                lines.append(f"password_file {self._password_file()}")
            elif word == "acl_file":
                assert self.config_file is not None
                acl = self.workdir / "acl"
                shipped = (self.config_file.parent / "mosquitto.acl").read_text()
                acl.write_text(shipped + "\n" + "\n".join(self.acl_extra) + "\n")
                lines.append(f"acl_file {acl}")
            elif word == "persistence_location":
                lines.append(f"persistence_location {self.workdir}/")
            elif word == "log_dest":
                lines += [*logging, "connection_messages true"]
            else:
                lines.append(line)
        return lines

    def _password_file(self) -> Path:
        passwords = self.workdir / "passwords"
        passwords.write_text("")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
        return passwords

    def _secure_listeners(self) -> list[str]:
        if not self.users:
            return []
        passwords = self._password_file()
        lines = [
            f"listener {self.password_port} {HOST}",
            "allow_anonymous false",
            f"password_file {passwords}",
        ]
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {HOST}",
                "allow_anonymous false",
                f"password_file {passwords}",
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        return lines

    def _ready(self) -> bool:
        # "running" is logged once the listener is open; requiring it first means a foreign
        # process that happens to own the port is not mistaken for this broker.
        new_log = self.log_path.read_bytes()[self._log_offset :] if self.log_path.exists() else b""
        if not re.search(rb"^\d+: mosquitto version \S+ running$", new_log, re.MULTILINE):
            return False
        try:
            socket.create_connection((HOST, self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def restart(self, timeout: float = 10.0) -> Self:
        self.stop()
        return self.start(timeout)

    def events(self) -> list[SubEvent]:
        """(kind, client_id, topic_filter) of every SUBSCRIBE/UNSUBSCRIBE filter, in order."""
        clients: list[str] = []  # longest first, so "a b" wins over "a"
        found: list[SubEvent] = []
        for line in self.log_text().splitlines():
            msg = re.sub(r"^\d+: ", "", line)
            if m := _CONNECTED.match(msg):
                clients = sorted({*clients, m[1]}, key=len, reverse=True)
            elif cid := next((c for c in clients if msg.startswith(c + " ")), None):
                rest = msg[len(cid) + 1 :]
                sub = re.fullmatch(r"([0-2]) (.+)", rest)
                found.append(("subscribe", cid, sub[2]) if sub else ("unsubscribe", cid, rest))
        return found

    def subscribed_topics(self, client_id: str | None = None) -> list[str]:
        return [t for k, c, t in self.events() if k == "subscribe" and client_id in (None, c)]

    def unsubscribed_topics(self, client_id: str | None = None) -> list[str]:
        return [t for k, c, t in self.events() if k == "unsubscribe" and client_id in (None, c)]


def _override_line(oid: str, kind: str, value: str | int | bytes) -> str:
    kind, text = ("uinteger" if kind == "gauge" else kind), str(value)
    if isinstance(value, bytes):
        if kind != "octet_str":
            raise ValueError(f"bytes can only be served as octet_str, not {kind} ({oid})")
        return f"override .{oid.lstrip('.')} octet_str 0x{value.hex()}"
    if not _NUMERIC_OID.fullmatch(oid):
        raise ValueError(f"override OID must be numeric (no MIBs are loaded): {oid!r}")
    if kind not in OVERRIDE_TYPES:
        raise ValueError(f"snmpd override cannot serve type {kind!r}; use {sorted(OVERRIDE_TYPES)}")
    if kind == "null":
        text = ""  # the OID then answers noSuchInstance
    elif kind == "octet_str" and re.fullmatch(r"(?!0x)[ -~]*", text) and not {'"', "\\"} & {*text}:
        text = f'"{text}"'
    elif kind == "octet_str":
        text = "0x" + text.encode().hex()  # snmpd reads a 0x-prefixed value as hex bytes
    elif not text or any(c.isspace() for c in text):
        raise ValueError(f"bad {kind} value for {oid}: {value!r}")
    return f"override .{oid.lstrip('.')} {kind} {text}".rstrip()


@dataclass(frozen=True)
class V3User:
    """A USM user the agent knows: authNoPriv without priv_protocol, else authPriv.
    net-snmp names: auth SHA, SHA-224, SHA-256, SHA-384, SHA-512, MD5; priv AES, AES-192, AES-256, DES."""

    name: str
    auth_protocol: str
    auth_key: str
    priv_protocol: str | None = None
    priv_key: str | None = None

    def config_lines(self) -> str:
        create = f'createUser {self.name} {self.auth_protocol} "{self.auth_key}"'
        if self.priv_protocol:
            create += f' {self.priv_protocol} "{self.priv_key}"'
        return f"{create}\nrouser {self.name} {'priv' if self.priv_protocol else 'auth'}"


class Snmpd(_Service):
    """net-snmp agent on udp:127.0.0.1:<port>: v1/v2c read-only community, no MIB files."""

    name = "snmpd"

    def __init__(
        self,
        workdir: Path,
        *,
        community: str = "public",
        overrides: Mapping[str, tuple[str, str | int]] = _NO_OVERRIDES,
        port: int | None = None,
        v3_users: Sequence[V3User] = (),
    ) -> None:
        super().__init__(workdir, port, "udp")
        self.community = community
        self.v3_users = list(v3_users)
        self.overrides = dict(overrides)
        self._override_lines = [_override_line(o, k, v) for o, (k, v) in self.overrides.items()]
        self._own_requests = 0  # request packets this helper sent via snmpget()
        self._own_at: dict[int, int] = {}  # in_pkts() value -> _own_requests at that moment
        (self.workdir / "empty").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "MIBS": "",
            "MIBDIRS": str(self.workdir / "empty"),
            "SNMPCONFPATH": str(self.workdir / "empty"),
            "SNMP_PERSISTENT_DIR": str(self.workdir / "persist"),
        }

    def start(self, timeout: float = 10.0) -> Self:
        config = [  # the address must not also be given on the command line: EADDRINUSE
            f"agentAddress udp:{HOST}:{self.port}",
            f"rocommunity {self.community} {HOST}",
            "dontLogTCPWrappersConnects yes",
            *self._override_lines,
            *(u.config_lines() for u in self.v3_users),
        ]
        # -f: no fork; -C: no default config files; -I -smux: else, as root, snmpd also
        # listens on tcp 0.0.0.0:199 (SMUX) and all but the first instance log a bind failure.
        cmd = [
            "/usr/sbin/snmpd",
            "-f",
            "-C",
            "-c",
            str(self.config_path),
            "-I",
            "-smux",
            "-Lf",
            str(self.log_path),
            "-p",
            str(self.workdir / "snmpd.pid"),
        ]
        self._launch("\n".join(config) + "\n", cmd, self._ready, timeout, self.env)
        if errors := [ln for ln in self.log_text().splitlines() if "Error" in ln]:
            self.stop()  # e.g. "snmpd.conf: line 4: Error: unknown type specified"
            self._fail("rejected its config: " + "; ".join(errors), cmd)
        return self

    def _ready(self) -> bool:  # the banner is logged once the agent socket is bound
        return "NET-SNMP version" in self.log_text() and not self._run([SYS_UPTIME], 0.2).returncode

    def _run(self, oids: list[str], timeout: float = 1.0) -> subprocess.CompletedProcess[str]:
        cmd = [
            "snmpget",
            "-v2c",
            "-c",
            self.community,
            "-On",
            "-Oq",
            "-t",
            str(timeout),
            "-r",
            "0",
            f"{HOST}:{self.port}",
            *oids,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=False)

    def snmpget(self, *oids: str) -> list[str]:
        """Values of ``oids`` as ``snmpget -On -Oqv`` prints them; one request packet.

        Strings come back quoted, non-ASCII/binary ones as quoted hex ("C3 BC ").
        """
        self._own_requests += 1
        result = self._run(list(oids))
        if result.returncode != 0 or "Timeout" in result.stdout:
            raise RuntimeError(f"snmpget {oids} failed: {result.stdout}{result.stderr}")
        values: list[str] = []
        for line in result.stdout.splitlines():  # ".oid value"; long hex strings wrap lines
            oid, _, value = line.partition(" ")
            if oid.startswith(".") and _NUMERIC_OID.fullmatch(oid):
                values.append(value)
            elif values:
                values[-1] += line
        return values

    def vars_per_request(self, seconds: float) -> float:
        """Variables per request that reached the agent over `seconds`, from two consistent
        snapshots of snmpInPkts and snmpInTotalReqVars, each read in one packet."""
        pk0, va0 = map(int, self.snmpget(SNMP_IN_PKTS, SNMP_TOTAL_REQ_VARS))
        time.sleep(seconds)
        pk1, va1 = map(int, self.snmpget(SNMP_IN_PKTS, SNMP_TOTAL_REQ_VARS))
        requests, variables = pk1 - pk0 - 1, va1 - va0 - 2  # minus the second snapshot itself
        if requests < 1:
            raise AssertionError(f"no request reached the agent in {seconds}s")
        return variables / requests

    def in_pkts(self) -> int:
        """snmpInPkts.0: packets that reached the agent (any community), this reading included."""
        value = int(self.snmpget(SNMP_IN_PKTS)[0])
        self._own_at[value] = self._own_requests
        return value

    def requests_since(self, baseline: int) -> int:
        """Packets received since the in_pkts() reading ``baseline``, minus this helper's own."""
        if baseline not in self._own_at:
            raise ValueError(f"{baseline} was not returned by in_pkts() of this Snmpd")
        now = self.in_pkts()
        return now - baseline - (self._own_at[now] - self._own_at[baseline])


class SnmpdFactory(Protocol):
    """Type of the ``snmpd_factory`` fixture: starts one more agent per call."""

    def __call__(
        self,
        overrides: Mapping[str, tuple[str, str | int]] | None = None,
        *,
        community: str = "public",
        port: int | None = None,
        v3_users: Sequence[V3User] = (),
    ) -> Snmpd: ...


class VictoriaMetrics(_Service):
    """VictoriaMetrics (Debian package `victoria-metrics`) on 127.0.0.1: a real server for the
    InfluxDB v2 write API. Queries see new points without the default 30 s latency offset."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path, *, port: int | None = None, dedup: bool = False) -> None:
        """`dedup`: keep one sample per series and millisecond, so that a point written
        twice (a batch replayed after a crash between its post and the spool's cursor) is
        stored once, as README "Stores" asks of a VictoriaMetrics that hookflash writes to."""
        super().__init__(workdir, port, "tcp")
        self.dedup = dedup

    def start(self, timeout: float = 20.0) -> Self:
        cmd = [
            "/usr/bin/victoria-metrics",
            *(["-dedup.minScrapeInterval=1ms"] if self.dedup else []),
            f"-httpListenAddr={HOST}:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            "-loggerOutput=stderr",
        ]
        self._launch("", cmd, self._ready, timeout)
        return self

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _ready(self) -> bool:
        return answers_ok(f"{self.url}/health")

    def export(self, match: str = '{__name__=~".+"}') -> list[dict[str, Any]]:
        """Every series matching `match`, after flushing what was just written."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).read()
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:
            return [json.loads(line) for line in response.read().decode().splitlines() if line]
