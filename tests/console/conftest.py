"""A locked gateway (master key, SQLite) over real HTTP, for the console's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aperture.settings import Settings
from tests.api.test_control_plane import Gateway, locked, run_gateway


@pytest.fixture(scope="module")
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("console")
    yield from run_gateway(
        locked(gateway_settings, f"sqlite:///{state}/db.sqlite", state / "spool")
    )
