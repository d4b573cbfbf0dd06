"""Postgres from Debian's binaries: ``initdb`` once, then ``pg_ctl start``.

``initdb`` refuses to run as root, so as root every command runs as the ``postgres``
user, with a data directory that user owns.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from headwater.errors import StackError
from headwater.stack.process import tail
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord

DATABASE = "headwater"
USER = "headwater"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    binary = shutil.which(name)
    if binary is None:
        raise StackError(f"{name} is not installed: run `make setup` (or `apt-get install postgresql`)")
    return binary


def _as_root() -> bool:
    return os.geteuid() == 0


def _run(cmd: list[str], what: str) -> None:
    if _as_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def _reachable_by_postgres(path: Path) -> bool:
    done = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)], check=False)
    return done.returncode == 0


class PostgresService:
    name = "postgres"
    env_var = "HEADWATER_POSTGRES_DSN"
    default_port = 15432

    def _home(self, ctx: StackContext) -> Path:
        home = (ctx.state_dir / "postgres").resolve()
        home.mkdir(parents=True, exist_ok=True)
        if _as_root() and not _reachable_by_postgres(home):
            # A checkout under a private directory (e.g. /root): keep the cluster where the
            # postgres user can reach it, named after the state dir so stacks do not collide.
            digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
            alt = Path(tempfile.gettempdir()) / f"headwater-pg-{digest}"
            alt.mkdir(parents=True, exist_ok=True)
            (home / "location").write_text(str(alt))
            home = alt
        if _as_root():
            shutil.chown(home, "postgres", "postgres")
        return home

    def start(self, ctx: StackContext, port: int) -> ServiceRecord:
        home = self._home(ctx)
        data, sockets, log = home / "data", home / "run", home / "postgres.log"
        if not (data / "PG_VERSION").exists():
            _run([_bin("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"], "initdb")
        if _as_root():
            sockets.mkdir(exist_ok=True)
            shutil.chown(sockets, "postgres", "postgres")
        else:
            sockets.mkdir(exist_ok=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        try:
            _run([_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
                 "pg_ctl start")
        except StackError as exc:
            raise StackError(f"{exc}\nlast lines of {log}:\n{tail(log)}") from exc
        pid = int((data / "postmaster.pid").read_text().split()[0])
        self._ensure_database(port)
        url = f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
        return ServiceRecord(self.name, pid, port, url, str(log))

    def _ensure_database(self, port: int) -> None:
        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def healthy(self, record: ServiceRecord) -> bool:
        try:
            with psycopg.connect(record.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None:
        data = Path(record.log).parent / "data"
        if (data / "postmaster.pid").exists():
            _run([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
