"""Records as the worker's topics carry them, for tests that need a few without running the pipeline."""

from __future__ import annotations

from typing import Any

import orjson


def processed(uuid: str, event: str, distinct_id: str, timestamp: int, price: float | None = None,
              team_id: int = 1, **properties: Any) -> dict[str, Any]:
    """A processed event (``schemas/avro/processed_event``): ``price`` and ``properties`` in its properties."""
    props = {**properties, **({} if price is None else {"price": price})}
    return {"uuid": uuid, "event": event, "properties": orjson.dumps(props).decode(), "timestamp": timestamp,
            "team_id": team_id, "distinct_id": distinct_id, "elements_chain": "", "created_at": timestamp,
            "person_id": "p", "person_properties": "{}", "person_created_at": None, "person_mode": "full",
            "group_0": "", "group_1": "", "group_2": "", "group_3": "", "group_4": "",
            "historical_migration": False}
