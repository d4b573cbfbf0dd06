"""The webhook sink against a real local receiver: signatures, batches, retries, refusals, pausing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from headwater.runtime.settings import Endpoints
from schemas.serializer import encode_envelope
from sinks.base import FlushResult, SourceEnvelope, SourcePosition
from sinks.errors import PermanentSinkError
from sinks.registry import resolve_sink
from sinks.webhook.config import WebhookConfig
from sinks.webhook.signing import sign, verify
from sinks.webhook.sink import WebhookSink, _retry_after
from tests.support.receiver import Receiver, receiving
from tests.support.records import processed

SECRET = b"s3cret"
BASE = 1_700_000_000 * 1_000_000


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET) as r:
        yield r


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.retry.BACKOFF_START", 0.01)


def sink(receiver: Receiver, **config: Any) -> WebhookSink:
    return WebhookSink("hook", WebhookConfig(url=receiver.url, secret_env="HOOK_SECRET", **config), SECRET)


def envelopes(count: int = 2, per: int = 3, event: str = "buy") -> list[SourceEnvelope]:
    return [SourceEnvelope(encode_envelope("processed_envelope",
                                           [processed(f"e{n}-{i}", event, f"u{i}", BASE + i) for i in range(per)]),
                           None, per, SourcePosition("events_processed", 0, 10 + n))
            for n in range(count)]


def flush(target: WebhookSink, batch: list[SourceEnvelope]) -> FlushResult:
    async def run() -> FlushResult:
        target.write(batch)
        try:
            return await target.flush()
        finally:
            await target.close()
    return asyncio.run(run())


def test_a_batch_is_posted_signed_with_properties_as_json(receiver: Receiver) -> None:
    result = flush(sink(receiver), envelopes())
    assert result.written == 6
    assert not result.rejected
    assert not result.unwritten
    assert receiver.bad_signatures == 0
    assert len(receiver.deliveries) == 1
    body = receiver.deliveries[0].body
    assert body["destination"] == "hook"
    assert body["window"] is None
    assert body["batch"] == receiver.deliveries[0].batch == "events_processed-p0-o10-0"
    assert isinstance(body["records"][0]["properties"], dict)  # JSON text sent as JSON
    assert sorted(receiver.uuids()) == sorted(f"e{n}-{i}" for n in range(2) for i in range(3))


def test_signatures_verify_only_for_the_exact_body_and_secret() -> None:
    body = b'{"records": []}'
    assert verify(SECRET, body, sign(SECRET, body))
    assert not verify(SECRET, body + b" ", sign(SECRET, body))
    assert not verify(b"other", body, sign(SECRET, body))
    assert not verify(SECRET, body, None)


def test_batches_hold_at_most_max_batch_records_and_the_filter_applies(receiver: Receiver) -> None:
    batch = envelopes(count=3, per=4) + envelopes(count=1, per=5, event="view")
    result = flush(sink(receiver, max_batch_records=5, filter={"events": ["buy"]}), batch)
    assert result.written == 12
    assert [len(d.body["records"]) for d in receiver.deliveries] == [5, 5, 2]
    assert len({d.batch for d in receiver.deliveries}) == 3


def test_window_results_go_one_window_per_request(receiver: Receiver) -> None:
    def window(start: int, key: str) -> dict[str, Any]:
        return {"window": "per_minute", "key": orjson.dumps({"event": key}).decode(), "start": start,
                "end": start + 60_000_000, "values": '{"events": 3}', "skipped": 0, "emitted_at": start}

    results = [window(BASE, "a"), window(BASE + 60_000_000, "a"), window(BASE, "b")]
    envelope = SourceEnvelope(encode_envelope("window_results", results), None, 3,
                              SourcePosition("window_results", 0, 0))
    assert flush(sink(receiver), [envelope]).written == 3
    windows = sorted((d.body["window"]["start"], len(d.body["records"])) for d in receiver.deliveries)
    assert windows == [(BASE, 2), (BASE + 60_000_000, 1)]
    assert receiver.deliveries[0].body["records"][0]["values"] == {"events": 3}


def test_a_failing_destination_is_retried_until_it_answers(receiver: Receiver) -> None:
    receiver.fail_next(503, 500, 429)
    result = flush(sink(receiver), envelopes())
    assert result.written == 6
    assert not result.unwritten
    assert receiver.requests == 4
    assert len(receiver.deliveries) == 1


def test_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.fail_next(503)
    receiver.retry_after = "0.3"  # the backoff alone would wait ~0.01 s
    assert flush(sink(receiver), envelopes(count=1)).written == 3
    assert len(receiver.arrivals) == 2
    assert receiver.arrivals[1] - receiver.arrivals[0] >= 0.3


def test_a_retry_after_that_is_no_number_leaves_the_backoff() -> None:
    assert _retry_after("2") == 2.0
    assert _retry_after("-1") == 0.0
    assert _retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert _retry_after(None) is None


def test_a_refused_record_is_found_by_halving_and_rejected_alone(receiver: Receiver) -> None:
    receiver.refuse_uuids.add("e1-2")
    result = flush(sink(receiver), envelopes(count=2, per=4))
    assert [r.record["uuid"] for r in result.rejected] == ["e1-2"]
    assert "422" in result.rejected[0].error
    assert result.written == 7
    assert sorted(receiver.uuids()) == sorted({f"e{n}-{i}" for n in range(2) for i in range(4)} - {"e1-2"})


def test_a_batch_too_large_is_halved(receiver: Receiver) -> None:
    receiver.fail_next(413)
    result = flush(sink(receiver), envelopes(count=2, per=4))
    assert result.written == 8
    assert not result.rejected
    assert [len(d.body["records"]) for d in receiver.deliveries] == [4, 4]


def test_a_destination_that_stays_down_is_paused_and_its_envelopes_dead_lettered(receiver: Receiver) -> None:
    receiver.down()
    target = sink(receiver, pause_after_seconds=0.3, probe_seconds=0.4)

    async def run() -> list[FlushResult]:
        results = []
        for batch in (envelopes(count=2), envelopes(count=1)):
            target.write(batch)
            results.append(await target.flush())
        health = await target.healthcheck()
        assert not health.ok
        assert "paused" in health.detail
        receiver.up()
        await asyncio.sleep(0.45)  # past the next probe
        target.write(envelopes(count=1))
        results.append(await target.flush())
        assert (await target.healthcheck()).ok
        await target.close()
        return results

    first, second, after = asyncio.run(run())
    assert first.written == 0
    assert [u.reason for u in first.unwritten] == ["destination_paused"] * 2
    assert "ConnectError" in first.unwritten[0].error
    assert second.written == 0
    assert len(second.unwritten) == 1
    assert after.written == 3
    assert not after.unwritten


def test_the_worker_does_not_start_without_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(PermanentSinkError, match=r"HOOK_SECRET.*not set"):
        resolve_sink("webhook").build("hook", {"url": "http://127.0.0.1:9/", "secret_env": "HOOK_SECRET"},
                                      Endpoints(kafka="", postgres="", redis="", clickhouse=""))


@pytest.mark.parametrize("config", [
    {"url": "ftp://x", "secret_env": "S"},
    {"url": "http://x", "secret_env": "not a name"},
    {"url": "http://x", "secret_env": "S", "secret": "inline"},
])
def test_bad_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WebhookConfig.model_validate(config)
