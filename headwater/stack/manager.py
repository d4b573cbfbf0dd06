"""``headwater up | down | status``: start, stop and report the local stack."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from headwater.errors import StackError
from headwater.runtime.settings import Settings
from headwater.stack.apps import app_exit, app_healthy, app_kind, app_names, log_tail, stop_app
from headwater.stack.clickhouse import ClickHouseService
from headwater.stack.kafka import KafkaService, broker_count
from headwater.stack.postgres import PostgresService
from headwater.stack.process import pick_port, pid_alive
from headwater.stack.redis import RedisService
from headwater.stack.service import Service, StackContext
from headwater.stack.state import ServiceRecord, read_state, write_state

KAFKA = KafkaService()
SERVICES: tuple[Service, ...] = (KAFKA, PostgresService(), RedisService(), ClickHouseService())

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    state: str  # running | stopped | external | unhealthy | exited (a detached app that stopped on its own)
    url: str | None
    pid: int | None
    log: str | None
    exit: str | None = None  # exited: how ("exit code 1 at …", "killed by SIGKILL at …")
    log_tail: list[str] | None = None  # exited: the last lines of its log
    members: list[ServiceStatus] | None = None  # a service of several processes (Kafka's brokers): each one


def _context(settings: Settings) -> StackContext:
    return StackContext(state_dir=settings.state_dir, cache_dir=settings.cache_dir,
                        kafka_brokers=settings.kafka_brokers)


def alive(record: ServiceRecord) -> bool:
    """Whether any process of the service runs (a cluster with a broker down still serves)."""
    return any(pid_alive(p.pid) for p in record.processes)


def _external(service: Service) -> str | None:
    return os.environ.get(service.env_var) or None


def up(settings: Settings, progress: Progress = lambda _: None) -> list[ServiceStatus]:
    """Start every service that is neither configured elsewhere nor already healthy."""
    ctx = _context(settings)
    records = read_state(settings.stack_file)
    if not _external(KAFKA):  # a count the data cannot take is refused before anything starts
        ctx = replace(ctx, kafka_brokers=broker_count(settings.state_dir, settings.kafka_brokers))
    to_start: list[tuple[Service, int]] = []
    for service in SERVICES:
        record = records.get(service.name)
        if _external(service):
            progress(f"{service.name}: using {service.env_var}")
            records.pop(service.name, None)
        elif record and service is KAFKA and alive(record) and not all(pid_alive(m.pid) for m in record.processes):
            stopped = ", ".join(m.name for m in record.processes if not pid_alive(m.pid))
            progress(f"{service.name}: starting {stopped} again …")
            records[service.name] = record = KAFKA.restart_members(ctx, record)
            write_state(settings.stack_file, records)
            progress(f"{service.name}: ready at {record.url}")
        elif record and alive(record) and service.healthy(record):
            progress(f"{service.name}: already running at {record.url}")
        else:
            port = pick_port(record.port if record else service.default_port)
            to_start.append((service, port))

    def start(item: tuple[Service, int]) -> ServiceRecord:
        service, port = item
        progress(f"{service.name}: starting on 127.0.0.1:{port} …")
        try:
            started = service.start(ctx, port)
        except StackError as exc:
            # The port was free when picked; another process may have taken it since. Once more elsewhere.
            port = pick_port(0)
            progress(f"{service.name}: did not start ({str(exc).splitlines()[0]}); trying port {port} …")
            started = service.start(ctx, port)
        progress(f"{service.name}: ready at {started.url}")
        return started

    failures: list[str] = []
    started_now: dict[str, ServiceRecord] = {}
    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures = [(item[0], pool.submit(start, item)) for item in to_start]
        for service, future in futures:
            try:
                records[service.name] = started_now[service.name] = future.result()
            except StackError as exc:
                failures.append(f"{service.name}: {exc}")
    write_state(settings.stack_file, records)
    if failures:
        if started_now:  # leave nothing of a stack that did not start
            down(settings, progress, only=set(started_now))
        raise StackError("the local stack did not start:\n" + "\n".join(failures))
    return status(settings)


def down(settings: Settings, progress: Progress = lambda _: None, only: set[str] | None = None) -> None:
    """Stop exactly the processes ``up`` recorded (or those of them named in ``only``; an app's kind,
    ``gateway``, names every gateway)."""
    ctx = _context(settings)
    records = read_state(settings.stack_file)
    for name in app_names(records):
        app = records[name]
        if only is not None and name not in only and app_kind(name) not in only:
            continue
        if pid_alive(app.pid):
            progress(f"{name}: stopping (pid {app.pid}) …")
            stop_app(app)
        else:
            progress(f"{name}: was not running ({app_exit(app)})")
        records.pop(name)
        write_state(settings.stack_file, records)
        progress(f"{name}: stopped")
    for service in reversed(SERVICES):
        if only is not None and service.name not in only:
            continue
        record = records.pop(service.name, None)
        if record is None:
            continue
        if alive(record):
            pids = ", ".join(str(p.pid) for p in record.processes if pid_alive(p.pid))
            progress(f"{service.name}: stopping (pid {pids}) …")
            service.stop(ctx, record)
        progress(f"{service.name}: stopped")
        write_state(settings.stack_file, records)


def status(settings: Settings) -> list[ServiceStatus]:
    records = read_state(settings.stack_file)
    result: list[ServiceStatus] = []
    for service in SERVICES:
        external = _external(service)
        record = records.get(service.name)
        if external:
            result.append(ServiceStatus(service.name, "external", external, None, None))
        elif record is None or not alive(record):
            result.append(ServiceStatus(service.name, "stopped", None, None, None))
        elif record.members:
            members = [_member_status(service, m) for m in record.members]
            state = "running" if all(m.state == "running" for m in members) else "unhealthy"
            result.append(ServiceStatus(service.name, state, record.url, record.pid, record.log, members=members))
        else:
            state = "running" if service.healthy(record) else "unhealthy"
            result.append(ServiceStatus(service.name, state, record.url, record.pid, record.log))
    for name in app_names(records):
        app = records[name]
        if pid_alive(app.pid):
            state = "running" if app_healthy(app) else "unhealthy"
            result.append(ServiceStatus(name, state, app.url, app.pid, app.log))
        else:
            result.append(ServiceStatus(name, "exited", app.url, app.pid, app.log, app_exit(app), log_tail(app)))
    return result


def _member_status(service: Service, member: ServiceRecord) -> ServiceStatus:
    if not pid_alive(member.pid):
        return ServiceStatus(member.name, "stopped", member.url, member.pid, member.log)
    state = "running" if service.healthy(member) else "unhealthy"
    return ServiceStatus(member.name, state, member.url, member.pid, member.log)
