"""A failover leaves nothing for the cyclic collector: the request is freed when it is done."""

from __future__ import annotations

import types
import weakref
from typing import Any, cast

import anyio
import pytest

from aperture.errors import UpstreamUnavailableError
from aperture.routing.breaker import SharedBreakers
from aperture.routing.retry import RetryPolicy
from aperture.routing.router import Router
from aperture.storage.memory import MemoryCounters


class _Request:
    """Stands for a request and its images."""


def _option(name: str) -> Any:
    provider = types.SimpleNamespace(name=name, kind="openai")
    target = types.SimpleNamespace(provider=provider, upstream_model="m")
    return types.SimpleNamespace(key=f"{name}/m", target=target, weight=1.0, canary=False)


class _Hooks:
    async def prepare(self, request: Any, target: Any) -> Any:
        return request

    def finished(self, key: str, outcome: str, seconds: float) -> None:
        pass


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_request_that_failed_over_is_freed_without_the_collector() -> None:
    router = Router(cast(Any, None), SharedBreakers(MemoryCounters()), RetryPolicy())
    tried: list[str] = []

    async def attempt(prepared: Any, target: Any) -> str:
        tried.append(target.provider.name)
        if target.provider.name == "down":
            raise UpstreamUnavailableError("down", provider="down")
        return "answer"

    request = _Request()
    freed = weakref.ref(request)
    resolution = cast(Any, types.SimpleNamespace(strategy="priority", canary_percent=0))
    attempts = router.attempts(
        cast(Any, request), resolution, [_option("down"), _option("up")], _Hooks()
    )
    del request

    assert anyio.run(router._run, attempts, attempt) == "answer"
    assert tried == ["down", "up"]
    del attempts
    assert freed() is None
