"""Per-event capture rules (docs/ingestion.md, "At capture")."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture_gateway.errors import BadRequest, Unauthorized
from capture_gateway.events import (
    MAX_FUTURE_MICROS,
    Batch,
    CaptureContext,
    check_token,
    parse_time,
    request_token,
    split_batch,
    to_raw_event,
    uuid7,
)
from headwater.runtime.projects import new_project_problem
from headwater.runtime.restrictions import uuid_problems
from schemas.events import RawEvent

NOW = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds
CTX = CaptureContext(now=NOW, ip="1.2.3.4", sent_at_ms=None, engage=False)


def _maybe(event: dict[str, Any], batch_sent_at: Any = None, ctx: CaptureContext = CTX) -> RawEvent | None:
    return to_raw_event(event, "phc_x", Batch([event], "phc_x", batch_sent_at, False), ctx)


def _one(event: dict[str, Any], batch_sent_at: Any = None, ctx: CaptureContext = CTX) -> RawEvent:
    raw = _maybe(event, batch_sent_at, ctx)
    assert raw is not None, f"{event} was dropped"
    return raw


def test_body_shapes() -> None:
    assert split_batch([{"event": "a"}]).events == [{"event": "a"}]
    batch = split_batch({"api_key": "phc_x", "batch": [{"event": "a"}], "historical_migration": True})
    assert (batch.token, batch.historical_migration) == ("phc_x", True)
    assert split_batch({"event": "a"}).events == [{"event": "a"}]
    with pytest.raises(BadRequest):
        split_batch("nope")


def test_token_sources_and_shape() -> None:
    assert request_token(Batch([{}], " phc_x ", None, False)) == "phc_x"
    assert request_token(Batch([{"properties": {"token": "phc_p"}}], None, None, False)) == "phc_p"
    assert request_token(Batch([{"$token": "phc_t"}], None, None, False)) == "phc_t"
    for bad, code in [(None, "missing_token"), ("phx_abc", "personal_api_key"), ("x" * 65, "invalid_token"),
                      ("tök", "invalid_token")]:
        with pytest.raises(Unauthorized) as caught:
            request_token(Batch([{}], bad, None, False))
        assert caught.value.code == code
    with pytest.raises(BadRequest):
        request_token(Batch([{"token": "phc_a"}, {"token": "phc_b"}], None, None, False))


def test_distinct_id_rules() -> None:
    assert _one({"event": "e", "distinct_id": 42})["distinct_id"] == "42"
    assert _one({"event": "e", "$distinct_id": "x"})["distinct_id"] == "x"
    assert _one({"event": "e", "properties": {"distinct_id": "p"}})["distinct_id"] == "p"
    assert _one({"event": "e", "distinct_id": "a\x00b"})["distinct_id"] == "a\ufffdb"
    assert len(_one({"event": "e", "distinct_id": "x" * 500})["distinct_id"]) == 200
    for missing in ({"event": "e"}, {"event": "e", "distinct_id": ""}, {"event": "e", "distinct_id": "  "}):
        with pytest.raises(BadRequest):
            _one(missing)


def test_uuid_kept_assigned_or_refused() -> None:
    given_uuid = str(uuid.uuid4())
    assert _one({"event": "e", "distinct_id": "d", "uuid": given_uuid})["uuid"] == given_uuid
    assigned = uuid.UUID(_one({"event": "e", "distinct_id": "d"})["uuid"])
    assert assigned.version == 7
    with pytest.raises(BadRequest):
        _one({"event": "e", "distinct_id": "d", "uuid": "not-a-uuid"})


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert [i[:8] for i in ids] == sorted(i[:8] for i in ids)


def test_event_name_rules() -> None:
    with pytest.raises(BadRequest):
        _one({"distinct_id": "d"})
    assert _maybe({"event": "$performance_event", "distinct_id": "d"}) is None
    engage = CaptureContext(now=NOW, ip=None, sent_at_ms=None, engage=True)
    assert _one({"distinct_id": "d", "$set": {"a": 1}}, ctx=engage)["event"] == "$identify"


def test_clock_skew_correction() -> None:
    # The device clock is 1 h behind: timestamp and sent_at are both an hour early.
    event = {"event": "e", "distinct_id": "d", "timestamp": "2023-11-14T21:13:10Z"}
    raw = _one(event, batch_sent_at="2023-11-14T21:13:20Z")
    assert raw["timestamp"] == NOW - 10_000_000
    ignoring = _one({**event, "properties": {"$ignore_sent_at": True}}, batch_sent_at="2023-11-14T21:13:20Z")
    assert ignoring["timestamp"] == NOW - 3_600_000_000 - 10_000_000


def test_offset_and_legacy_underscore_sent_at() -> None:
    assert _one({"event": "e", "distinct_id": "d", "offset": 1500})["timestamp"] == NOW - 1_500_000
    ctx = CaptureContext(now=NOW, ip=None, sent_at_ms=(NOW // 1000) - 60_000, engage=False)
    raw = _one({"event": "e", "distinct_id": "d", "timestamp": (NOW // 1000) - 61_000}, ctx=ctx)
    assert raw["timestamp"] == NOW - 1_000_000


def test_future_is_clamped_and_garbage_warns() -> None:
    future = _one({"event": "e", "distinct_id": "d", "timestamp": (NOW + MAX_FUTURE_MICROS + 10**9) / 10**6})
    assert future["timestamp"] == NOW
    assert future["capture_warnings"] == ["event_timestamp_in_future"]
    garbage = _one({"event": "e", "distinct_id": "d", "timestamp": "yesterday-ish"})
    assert garbage["timestamp"] == NOW
    assert garbage["capture_warnings"] == ["ignored_invalid_timestamp"]


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20.123456+00:00", NOW + 123_456),
        ("2023-11-14", NOW - (22 * 3600 + 13 * 60 + 20) * 10**6),
        (1_700_000_000, NOW),
        (1_700_000_000_000, NOW),
        ("1700000000.5", NOW + 500_000),
        ("nope", None),
        (True, None),
    ],
)
def test_parse_time(value: Any, micros: int | None) -> None:
    assert parse_time(value) == micros


def test_set_and_set_once_are_carried() -> None:
    raw = _one({"event": "e", "distinct_id": "d", "$set": {"a": 1}, "$set_once": {"b": 2}})
    assert orjson.loads(raw["set"] or "null") == {"a": 1}
    assert orjson.loads(raw["set_once"] or "null") == {"b": 2}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], max_examples=300)
@given(st.dictionaries(st.sampled_from(["event", "distinct_id", "uuid", "timestamp", "properties", "offset",
                                        "$set", "sent_at"]), json_values))
def test_any_event_json_is_either_accepted_or_a_bad_request(event: dict[str, Any]) -> None:
    try:
        raw = _one(event)
    except BadRequest:
        return
    if raw is not None:
        assert raw["distinct_id"]
        assert raw["event"]
        uuid.UUID(raw["uuid"])


def test_a_missing_token_error_says_how_this_path_takes_one() -> None:
    with pytest.raises(Unauthorized, match="send api_key in the body"):
        check_token(None)
    with pytest.raises(Unauthorized, match="Authorization: Bearer"):
        check_token("", "send the header Authorization: Bearer <project API token>")


@pytest.mark.parametrize(("name", "token", "why"), [
    ("web", "phx_personal", "personal API key"),
    ("", None, "needs a name"),
    ("   ", None, "needs a name"),
    (" web", None, "spaces"),
    ("web", "phc_with space", "has spaces"),
    ("web", "", "empty"),
    ("web", "phc_" + "x" * 80, "malformed"),
    ("web", "phc_tök", "malformed"),
])
def test_project_create_refuses_what_capture_would_refuse(name: str, token: str | None, why: str) -> None:
    problem = new_project_problem(name, token)
    assert problem is not None
    assert why in problem


def test_project_create_takes_a_good_name_and_token() -> None:
    assert new_project_problem("web app", "phc_abc") is None
    assert new_project_problem("web app", None) is None
    assert check_token(" phc_abc ") == "phc_abc"  # capture and create share token_problem


def test_a_restriction_on_a_uuid_that_is_not_one_is_refused() -> None:
    assert uuid_problems(["0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", "not-a-uuid"]) == ["not-a-uuid"]
