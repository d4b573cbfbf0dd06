"""The worker's log: plain lines in a file, and a coordinator still starting is not an ERROR.

Faust draws a progress spinner (terminal escape codes) on its stdout whatever that is; in a
log file the codes are noise, so the spinner runs only on a terminal. aiokafka logs every
failed group-coordinator lookup as an ERROR and retries it; while Kafka's coordinator starts
(every clean start of a new group) that is expected, so those few retriable errors are logged
at INFO. Every other error keeps its level.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiokafka import errors as kafka_errors

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
TRANSIENT_COORDINATOR_ERRORS = (
    kafka_errors.CoordinatorNotAvailableError,  # "[Error 15] GroupCoordinatorNotAvailableError"
    kafka_errors.CoordinatorLoadInProgressError,
    kafka_errors.NotCoordinatorError,
)


class CoordinatorStarting(logging.Filter):
    """Lowers aiokafka's "Group Coordinator Request failed" to INFO for the transient errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno == logging.ERROR and any(isinstance(a, TRANSIENT_COORDINATOR_ERRORS) for a in args):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_worker_logs(worker: Any) -> None:
    """Apply the module docstring to a ``faust.Worker`` before it runs."""
    if not sys.stdout.isatty():
        worker.spinner = None
    coordinator = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, CoordinatorStarting) for f in coordinator.filters):
        coordinator.addFilter(CoordinatorStarting())
