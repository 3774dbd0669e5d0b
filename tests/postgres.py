"""A real PostgreSQL server for tests and benchmarks, on a 127.0.0.1 ephemeral port.

Debian's server binaries (`initdb`, `pg_ctl` under /usr/lib/postgresql/<version>/bin)
make a cluster in a temporary folder. They refuse to run as root, so as root they run as
a dedicated system user (`hookflash-pg`, made here when missing) that owns the folder.
The cluster's superuser is `hookflash` with a random password (scram-sha-256, no trust):
hookflash gets it from the environment variable its config names, as in production.
Never the machine's own server on 5432.

Plain Python (no pytest): usable from conftest fixtures, benchmarks and ad-hoc scripts.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql

from services import HOST, free_port

OS_USER = "hookflash-pg"
DB_USER = "hookflash"
PASSWORD_ENV = "HOOKFLASH_DATABASE_PASSWORD"


def server_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql: install Debian's postgresql package")
    return found[-1]


def _os_user() -> str | None:
    """The user the server runs as: the dedicated one as root (made if missing), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            check=True,
            capture_output=True,
        )
    return OS_USER


class Postgres:
    """`with Postgres(fsync=False) as pg: url = pg.create_database()`. The cluster lives in
    a new folder under the system's temporary directory (the server's user must reach it),
    removed at stop."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="hookflash-pg-"))
        self.data = self.workdir / "cluster"
        self.socket_dir = self.workdir / "run"
        self.log_path = self.workdir / "server.log"
        self.port = free_port("tcp")
        self.password = secrets.token_urlsafe(18)
        self.fsync = fsync
        self._user = _os_user()
        self._started = False

    def _as_server_user(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", self._user, "--", *cmd] if self._user else cmd
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    def start(self) -> Self:
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user:
            uid, gid = pwd.getpwnam(self._user)[2:4]
            for path in (self.workdir, self.socket_dir, pwfile):
                os.chown(path, uid, gid)
        os.chmod(self.workdir, 0o700)
        init = [server_bin("initdb"), "-D", str(self.data), "-U", DB_USER, "--pwfile", str(pwfile)]
        init += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"]
        self._check(self._as_server_user(init), "initdb")
        pwfile.unlink()
        self.start_server()
        self._started = True
        deadline = time.monotonic() + 30
        while True:  # -w waits for the socket; make sure TCP with the password answers too
            try:
                psycopg.connect(self.admin_url("postgres"), password=self.password, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def url(self, dbname: str) -> str:
        """The URL hookflash is given: no password (that comes from PASSWORD_ENV)."""
        return f"postgresql://{DB_USER}@{HOST}:{self.port}/{dbname}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return self.url(dbname)

    def connect(self, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(dbname), password=self.password, autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        with self.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop_server(self) -> None:
        """Stop the server (fast shutdown: every connection ends), keeping its cluster."""
        stop = [server_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        self._check(self._as_server_user(stop), "pg_ctl stop")

    def start_server(self) -> None:
        """Start the stopped server again on the same port."""
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.socket_dir}"
        options += f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200 -c shared_buffers=128MB"
        start = [server_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options]
        self._check(self._as_server_user([*start, "-w", "-t", "60", "start"]), "pg_ctl start")

    def every_row_as_text(self, url: str) -> dict[str, str]:
        """Every base table of the database at `url` (whatever made it), each row cast to
        text: what a privacy check reads, not a list of the tables hookflash knows."""
        with self.connect(url.rsplit("/", 1)[1]) as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_type = 'BASE TABLE'"
                " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            found = {}
            for schema, table in tables:
                name = sql.Identifier(str(schema), str(table))
                rows = conn.execute(sql.SQL("SELECT t::text FROM {} t").format(name)).fetchall()
                found[f"{schema}.{table}"] = "\n".join(str(r[0]) for r in rows)
        return found

    def stop(self) -> None:
        if self._started:
            self._started = False
            stop = [server_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
            self._as_server_user(stop)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
