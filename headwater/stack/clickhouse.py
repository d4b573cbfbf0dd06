"""Embedded ClickHouse: one process owns the chDB data path and serves queries over HTTP.

chDB lets one process open a data path, so the stack runs ``headwater.stack.chdb_server``
as that owner; the worker, ``migrate`` and ``query`` all talk to it.
"""

from __future__ import annotations

import importlib.util
import sys

import httpx

from headwater.errors import StackError
from headwater.stack.process import spawn, terminate, wait_until
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord


class ClickHouseService:
    name = "clickhouse"
    env_var = "HEADWATER_CLICKHOUSE_URL"
    default_port = 18123

    def start(self, ctx: StackContext, port: int) -> ServiceRecord:
        if importlib.util.find_spec("chdb") is None:
            raise StackError("embedded ClickHouse needs chDB: `pip install 'headwater[chdb]'` (make setup installs "
                             "it), or set HEADWATER_CLICKHOUSE_URL to a ClickHouse server")
        path = (ctx.state_dir / "clickhouse").resolve()
        log = ctx.logs / "clickhouse.log"
        cmd = [sys.executable, "-m", "headwater.stack.chdb_server", "--path", str(path), "--port", str(port)]
        pid = spawn(cmd, log)
        record = ServiceRecord(self.name, pid, port, f"chdb://{path}", str(log))
        wait_until("clickhouse (chDB)", lambda: self.healthy(record), pid=pid, log=log, timeout=60)
        return record

    def healthy(self, record: ServiceRecord) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{record.port}/ping", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None:
        terminate(record.pid)
