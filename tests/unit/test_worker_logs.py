"""The worker's log set-up: a starting coordinator is not an ERROR, real errors stay ERRORs, no spinner in a file."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import errors as kafka_errors

from streams.logs import COORDINATOR_LOGGER, quiet_worker_logs


class _Worker:
    spinner: Any = object()


@pytest.fixture
def coordinator_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    quiet_worker_logs(_Worker())
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    return caplog


@pytest.mark.parametrize("error", [kafka_errors.CoordinatorNotAvailableError(),
                                   kafka_errors.CoordinatorLoadInProgressError(),
                                   kafka_errors.NotCoordinatorError()])
def test_a_coordinator_still_starting_is_logged_at_info(coordinator_log: pytest.LogCaptureFixture,
                                                        error: Exception) -> None:
    logging.getLogger(COORDINATOR_LOGGER).error("Group Coordinator Request failed: %s", error)
    assert [r.levelname for r in coordinator_log.records] == ["INFO"]


def test_other_coordinator_errors_stay_errors(coordinator_log: pytest.LogCaptureFixture) -> None:
    error = kafka_errors.GroupAuthorizationFailedError("g")
    logging.getLogger(COORDINATOR_LOGGER).error("Group Coordinator Request failed: %s", error)
    assert [r.levelname for r in coordinator_log.records] == ["ERROR"]


def test_no_spinner_when_stdout_is_not_a_terminal() -> None:
    worker = _Worker()
    quiet_worker_logs(worker)  # pytest captures stdout: not a terminal
    assert worker.spinner is None
