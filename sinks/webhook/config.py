"""The ``webhook`` sink's settings (``sinks[].config`` in topology.yaml)."""

from __future__ import annotations

from pydantic import Field, field_validator

from sinks.filter import EventFilter
from sinks.registry import SinkConfig


class WebhookConfig(SinkConfig):
    """POSTs records (processed events, or window results) to a URL as signed JSON batches."""

    url: str = Field(description="Where the batches go (http:// or https://).")
    secret_env: str = Field(description=(
        "The environment variable holding this destination's signing secret (never the secret itself): "
        "each body is signed with HMAC-SHA256 in `X-Headwater-Signature: sha256=<hex>`."))
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (no secrets: "
                                                                      "topology.yaml is not a secret store).")
    max_batch_records: int = Field(500, ge=1, le=100_000, description=(
        "Records per request at most. A window's results go in requests of their own, one window each."))
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="How long one request may take.")
    pause_after_seconds: float = Field(300.0, gt=0, description=(
        "A destination failing for this long without one success is paused: its batches are dead-lettered "
        "(reason `destination_paused`) instead of holding the partition; `headwater dlq replay` delivers them "
        "once it is back."))
    probe_seconds: float = Field(30.0, gt=0, description=(
        "While paused, one batch this often is tried (once); the first that gets through resumes deliveries."))
    filter: EventFilter = Field(default_factory=EventFilter, description="Which records to send (default: all).")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url

    @field_validator("secret_env")
    @classmethod
    def _variable_name(cls, name: str) -> str:
        if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
            raise ValueError(f"{name!r} is no environment variable name: give the variable's name "
                             "(HEADWATER_WEBHOOK_SECRET, say), and put the secret in the environment")
        return name
