"""Storage tests use the same services, and the same skip-or-fail rule, as the contracts."""

from __future__ import annotations

import pytest

# Fixtures are found by name, so importing them is how this directory gets them.
from tests.contract.services import (  # noqa: F401
    fresh_postgres_url,
    postgres_server,
    postgres_session_url,
    postgres_url,
    redis_server,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
