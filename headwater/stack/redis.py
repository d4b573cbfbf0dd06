"""Redis: ``redis-server`` from Debian's package, no persistence."""

from __future__ import annotations

import shutil

from headwater.errors import StackError
from headwater.stack.process import port_answers, spawn, terminate, wait_until
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord


class RedisService:
    name = "redis"
    env_var = "HEADWATER_REDIS_URL"
    default_port = 16379

    def start(self, ctx: StackContext, port: int) -> ServiceRecord:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed: run `make setup` (or `apt-get install redis-server`)")
        log = ctx.logs / "redis.log"
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--daemonize", "no"]
        pid = spawn(cmd, log)
        record = ServiceRecord(self.name, pid, port, f"redis://127.0.0.1:{port}/0", str(log))
        wait_until("redis", lambda: self.healthy(record), pid=pid, log=log, timeout=20)
        return record

    def healthy(self, record: ServiceRecord) -> bool:
        return port_answers(record.port)

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None:
        terminate(record.pid)
