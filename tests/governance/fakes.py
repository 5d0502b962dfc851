"""Shared test doubles for governance: a caller with a key, and a store that is down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aperture.governance.keys import Principal
from aperture.storage import ApiKey, StorageError
from aperture.storage.records import (
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    WindowAdmission,
)


def principal(key_id: str = "k1", **fields: Any) -> Principal:
    return Principal(
        ApiKey(
            id=key_id,
            name=key_id,
            key_hash=b"x",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            **fields,
        )
    )


class DownLimits:
    """A ``Limits`` whose store is unreachable."""

    async def acquire(
        self, key: str, member: str, cost: int, *, limit: int, window_s: float
    ) -> WindowAdmission:
        raise StorageError("connection refused")

    async def adjust(self, key: str, member: str, delta: int, *, window_s: float) -> None:
        raise StorageError("connection refused")

    async def seed(self, scope: BudgetScope, spent: BudgetCharge) -> bool:
        raise StorageError("connection refused")

    async def reserve(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        estimate: BudgetCharge,
        *,
        hold_s: float,
        owner: str | None = None,
        note: bytes = b"",
    ) -> BudgetDecision:
        raise StorageError("connection refused")

    async def settle(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        actual: BudgetCharge,
        *,
        owner: str | None = None,
    ) -> bool:
        raise StorageError("connection refused")

    async def state(self, scope: str) -> BudgetState | None:
        raise StorageError("connection refused")

    async def beat(self, instance: str, *, ttl_s: float) -> None:
        raise StorageError("connection refused")

    async def lost(self) -> list[str]:
        raise StorageError("connection refused")

    async def claim(self, instance: str, *, lease_s: float, limit: int) -> list[ClaimedHold]:
        raise StorageError("connection refused")

    async def retire(self, instance: str) -> None:
        raise StorageError("connection refused")
