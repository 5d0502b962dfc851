"""``aperture keys create | list | revoke``: keys with limits and budgets from the shell."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aperture.cli import main
from aperture.storage import ApiKey, open_storage


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "aperture.yaml"
    config.write_text(
        "auth: {master_key: sk-master, key_pepper: pepper}\n"
        f"storage: {{database: 'sqlite:///{tmp_path}/db.sqlite'}}\n"
    )
    return config


async def _keys(database: str) -> list[ApiKey]:
    async with await open_storage(database, None) as storage:
        return await storage.keys.list()


def test_a_key_is_created_with_its_limits_and_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    argv = ["keys", "--config", str(config), "create", "ci", "--tenant", "acme", "--rpm", "60"]
    argv += ["--tpm", "40000", "--budget-usd", "5", "--budget-period", "daily"]

    assert main(argv) == 0

    printed = capsys.readouterr().out
    assert "key: ap_" in printed and "shown once" in printed
    [key] = anyio.run(_keys, f"sqlite:///{tmp_path}/db.sqlite")
    assert (key.tenant, key.rpm, key.tpm) == ("acme", 60, 40000)
    assert (key.budget_usd, key.budget_tokens, key.budget_period) == (5.0, None, "daily")


def test_a_key_without_a_budget_has_no_period(tmp_path: Path) -> None:
    assert main(["keys", "--config", str(_config(tmp_path)), "create", "plain"]) == 0

    [key] = anyio.run(_keys, f"sqlite:///{tmp_path}/db.sqlite")
    assert key.budget_period is None and key.budget_usd is None
