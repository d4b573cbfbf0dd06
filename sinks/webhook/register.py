"""Registers the ``webhook`` sink type: its config model and how it is built."""

from __future__ import annotations

import os

from headwater.runtime.settings import Endpoints
from sinks.errors import PermanentSinkError
from sinks.registry import register_sink
from sinks.webhook.config import WebhookConfig
from sinks.webhook.sink import WebhookSink


def build(name: str, config: WebhookConfig, endpoints: Endpoints) -> WebhookSink:
    secret = os.environ.get(config.secret_env)
    if not secret:
        raise PermanentSinkError(f"the environment variable {config.secret_env} (secret_env of sink {name!r}) is "
                                 "not set: put the destination's signing secret in it before starting the worker")
    return WebhookSink(name, config, secret.encode())


register_sink("webhook", WebhookConfig, build,
              "Signed JSON batches POSTed to a URL; retried with backoff, paused and dead-lettered when it stays down.")
