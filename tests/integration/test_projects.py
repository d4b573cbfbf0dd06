"""Project creation against the real Postgres: names are unique, bad names and tokens never stored."""

from __future__ import annotations

import uuid

import pytest

from headwater.errors import ConfigError
from headwater.runtime.projects import create_project, list_projects
from headwater.runtime.settings import Endpoints


async def test_a_taken_name_or_an_unusable_token_is_refused_and_nothing_is_stored(stack: Endpoints) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    first = await create_project(stack.postgres, name)
    with pytest.raises(ConfigError, match="exists already"):
        await create_project(stack.postgres, name)
    with pytest.raises(ConfigError, match="personal API key"):
        await create_project(stack.postgres, f"{name}-2", "phx_personal")
    with pytest.raises(ConfigError, match="has spaces"):
        await create_project(stack.postgres, f"{name}-3", "phc_a b")
    stored = [p for p in await list_projects(stack.postgres) if p.name.startswith(name)]
    assert [p.id for p in stored] == [first.id]
