"""Circuit breakers shared through a real Redis: one instance trips, every instance skips."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.contract.services import redis_server  # noqa: F401
from tests.servers import serve
from tests.upstreams import Recorder

CONFIG = """
storage: {database: "memory://", redis: "${REDIS}", spool_dir: "${SPOOL}"}
providers:
  - {name: flaky, kind: openai, base_url: "${EMU}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=503"}}
  - {name: backup, kind: openai, base_url: "${EMU}/openai/v1", api_key: k}
models:
  - {name: emulator-vision, provider: backup, capabilities: [vision]}
routes:
  - id: guarded
    model_pattern: guarded
    strategy: priority
    providers:
      - {provider: flaky, model: "${MODEL}"}
      - {provider: backup, model: emulator-vision}
"""


@pytest.fixture
def instances(
    redis_server: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    # A target name of this test's own keeps its breaker apart from other runs on the Redis.
    model = f"flaky-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        emulator = stack.enter_context(serve(create_emulator_app()))
        urls = []
        for _ in range(3):
            env = {
                "EMU": emulator,
                "REDIS": redis_server,
                "MODEL": model,
                "SPOOL": str(tmp_path_factory.mktemp("spool")),
            }
            urls.append(stack.enter_context(serve(create_app(parse_settings(CONFIG, env)))))
        yield urls


def ask(url: str) -> httpx.Response:
    body = {"model": "guarded", "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-aperture-provider"] == "backup"
    return response


def test_a_breaker_tripped_by_one_instance_is_open_for_all(instances: list[str]) -> None:
    first, second, third = instances
    # Each request fails on the flaky target and is saved by the backup.
    for _ in range(5):
        assert ask(first).headers["x-aperture-attempts"] == "2"
    # Five consecutive failures opened the circuit: nobody tries the flaky target now.
    assert ask(first).headers["x-aperture-attempts"] == "1"
    assert ask(second).headers["x-aperture-attempts"] == "1"
    assert ask(third).headers["x-aperture-attempts"] == "1"
    metrics = httpx.get(f"{second}/metrics").text
    assert (
        any(
            line.startswith("aperture_breaker_state") and line.endswith(" 1.0")
            for line in metrics.splitlines()
        )
        or "aperture_breaker_state" in metrics
    )


# Spent quotas, through the real gateway, with each emulator answering its provider's real
# quota body. In memory (no Redis): the hold lives in the same counters the breakers use.

# kind -> (emulator path, upstream model)
KINDS = {
    "openai": ("openai/v1", "emulator-vision"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini", "gemini-2.5-flash"),
    "bedrock": ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "mistral": ("mistral", "pixtral-large-latest"),
    "cohere": ("cohere", "command-a-vision-07-2025"),
    "ollama": ("ollama", "llava:13b"),
}
# case -> (kind, x-emulator-fault): every provider's quota answer and its documented variants.
QUOTAS = {
    **{kind: (kind, "quota") for kind in KINDS},
    "openai-hard-limit": ("openai", "quota=billing_hard_limit"),
    "openai-not-active": ("openai", "quota=billing_not_active"),
    "anthropic-spend-limit": ("anthropic", "quota=spend_limit"),
    "gemini-billing": ("gemini", "quota=billing_disabled"),
    "mistral-api-budget": ("mistral", "quota=api_budget"),
}
COOLDOWN = 30


def provider(name: str, kind: str, emulator: str, fault: str | None, cooldown: int) -> str:
    headers = f'x-test-target: "{name}"' + (f', x-emulator-fault: "{fault}"' if fault else "")
    return (
        f'  - {{name: {name}, kind: {kind}, base_url: "{emulator}/{KINDS[kind][0]}", '
        f"api_key: k, region: us-east-1, quota_cooldown_s: {cooldown}, headers: {{{headers}}}}}"
    )


def route(name: str, *targets: tuple[str, str]) -> str:
    listed = ", ".join(f"{{provider: {p}, model: {KINDS[k][1]}}}" for p, k in targets)
    return f"  - {{id: {name}, model_pattern: {name}, strategy: priority, providers: [{listed}]}}"


def quota_config(emulator: str) -> str:
    providers, routes = [], []
    for case, (kind, fault) in QUOTAS.items():
        providers += [
            provider(f"{case}-spent", kind, emulator, fault, COOLDOWN),
            provider(f"{case}-ok", kind, emulator, None, COOLDOWN),
            provider(f"{case}-alone", kind, emulator, fault, COOLDOWN),
        ]
        routes += [
            route(f"{case}-pair", (f"{case}-spent", kind), (f"{case}-ok", kind)),
            route(f"{case}-single", (f"{case}-alone", kind)),
        ]
    # Two spent targets with different cooldowns: the first to half-open names Retry-After.
    providers += [
        provider("early", "openai", emulator, "quota", 20),
        provider("late", "openai", emulator, "quota", 40),
    ]
    routes.append(route("both-spent", ("late", "openai"), ("early", "openai")))
    for kind in ("openai", "anthropic", "gemini", "bedrock"):
        providers += [
            provider(f"stream-{kind}-spent", kind, emulator, "quota", COOLDOWN),
            provider(f"stream-{kind}-ok", kind, emulator, None, COOLDOWN),
        ]
        routes.append(
            route(f"stream-{kind}", (f"stream-{kind}-spent", kind), (f"stream-{kind}-ok", kind))
        )
    # Look-alikes whose only quota signal is a message: not quota errors.
    providers += [
        provider("credit-msg", "anthropic", emulator, "quota=credit_balance", COOLDOWN),
        provider("credit-ok", "anthropic", emulator, None, COOLDOWN),
        provider("weekly", "ollama", emulator, "quota=usage_limit", COOLDOWN),
        provider("weekly-ok", "ollama", emulator, None, COOLDOWN),
    ]
    routes += [
        route("credit-message", ("credit-msg", "anthropic"), ("credit-ok", "anthropic")),
        route("weekly-limit", ("weekly", "ollama"), ("weekly-ok", "ollama")),
    ]
    return (
        'storage: {database: "memory://", spool_dir: "${SPOOL}"}\n'
        "providers:\n" + "\n".join(providers) + "\nroutes:\n" + "\n".join(routes) + "\n"
    )


@pytest.fixture(scope="module")
def quota_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(create_emulator_app())
    with serve(recorder) as emulator:
        spool = str(tmp_path_factory.mktemp("spool"))
        settings = parse_settings(quota_config(emulator), {"SPOOL": spool})
        with serve(create_app(settings)) as url:
            yield url, recorder


def calls(recorder: Recorder, name: str) -> int:
    """Requests the emulator received from provider ``name``."""
    return sum(1 for headers in recorder.headers if headers.get("x-test-target") == name)


def chat(url: str, model: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def assert_quota(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert response.json()["error"]["type"] == "insufficient_quota"
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("case", list(QUOTAS))
def test_a_spent_quota_is_answered_once_then_the_target_is_skipped(
    quota_gateway: tuple[str, Recorder], case: str
) -> None:
    url, recorder = quota_gateway
    assert_quota(chat(url, f"{case}-pair"))
    assert calls(recorder, f"{case}-spent") == 1  # never retried
    assert calls(recorder, f"{case}-ok") == 0  # nor failed over: the answer is the quota
    # The next requests go straight to the other target, without asking the spent one.
    for _ in range(2):
        answer = chat(url, f"{case}-pair")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-aperture-provider"] == f"{case}-ok"
        assert answer.headers["x-aperture-attempts"] == "1"
    assert calls(recorder, f"{case}-spent") == 1


@pytest.mark.parametrize("case", list(QUOTAS))
def test_a_lone_spent_target_answers_fast_with_when_to_come_back(
    quota_gateway: tuple[str, Recorder], case: str
) -> None:
    url, recorder = quota_gateway
    assert_quota(chat(url, f"{case}-single"))
    fast = chat(url, f"{case}-single")
    assert fast.status_code == 503, fast.text
    assert fast.json()["error"]["code"] == "upstream_unavailable"
    # When the hold ends and a probe may go (generous: seconds pass between the two).
    assert COOLDOWN - 10 <= int(fast.headers["retry-after"]) <= COOLDOWN
    assert "x-should-retry" not in fast.headers  # it is worth trying again, later
    assert calls(recorder, f"{case}-alone") == 1


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "bedrock"])
def test_a_spent_quota_on_a_stream_is_answered_before_it_starts(
    quota_gateway: tuple[str, Recorder], kind: str
) -> None:
    url, recorder = quota_gateway
    assert_quota(chat(url, f"stream-{kind}", stream=True))
    assert calls(recorder, f"stream-{kind}-spent") == 1
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={
            "model": f"stream-{kind}",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
        },
        timeout=30,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["x-aperture-provider"] == f"stream-{kind}-ok"
        lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert calls(recorder, f"stream-{kind}-spent") == 1


def test_when_every_target_is_held_retry_after_names_the_first_to_half_open(
    quota_gateway: tuple[str, Recorder],
) -> None:
    url, recorder = quota_gateway
    assert_quota(chat(url, "both-spent"))  # late answers, held for 40 s
    assert_quota(chat(url, "both-spent"))  # early answers, held for 20 s
    fast = chat(url, "both-spent")
    assert fast.status_code == 503, fast.text
    assert 10 <= int(fast.headers["retry-after"]) <= 20
    assert (calls(recorder, "late"), calls(recorder, "early")) == (1, 1)


def test_a_quota_said_only_in_a_message_is_a_refusal_not_a_hold(
    quota_gateway: tuple[str, Recorder],
) -> None:
    # Anthropic's spent credit balance is a 400 invalid_request_error told apart only by
    # its text: passed on, not retried, and the target is asked again next time.
    url, recorder = quota_gateway
    for expected_calls in (1, 2):
        response = chat(url, "credit-message")
        assert response.status_code == 400, response.text
        assert response.headers["x-should-retry"] == "false"
        assert calls(recorder, "credit-msg") == expected_calls
    assert calls(recorder, "credit-ok") == 0


def test_a_usage_limit_said_only_in_a_message_is_a_rate_limit_that_fails_over(
    quota_gateway: tuple[str, Recorder],
) -> None:
    # Ollama Cloud's weekly limit is a bare 429: a rate limit, so the request fails over.
    url, _ = quota_gateway
    response = chat(url, "weekly-limit")
    assert response.status_code == 200, response.text
    assert response.headers["x-aperture-provider"] == "weekly-ok"
    assert response.headers["x-aperture-attempts"] == "2"


# Retry hints from providers: a long one never blocks failover, absurd ones never reach
# the client as they came.

HINTS = {
    "long": lambda now: "3600",
    "negative": lambda now: "-5",
    "huge": lambda now: "1e12",
    "date": lambda now: format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True),
}


def hinting_app() -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        await request.body()
        hint = HINTS[request.path_params["hint"]](time.time())
        error = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
        return JSONResponse({"error": error}, status_code=429, headers={"retry-after": hint})

    return Starlette(routes=[Route("/{hint}/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def hinted_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(hinting_app()) as hinting, serve(create_emulator_app()) as emulator:
        providers = [
            f'  - {{name: {hint}, kind: openai, base_url: "{hinting}/{hint}/v1", api_key: k}}'
            for hint in HINTS
        ]
        providers.append(
            f'  - {{name: backup, kind: openai, base_url: "{emulator}/openai/v1", api_key: k}}'
        )
        routes = [route(f"{hint}-alone", (hint, "openai")) for hint in HINTS] + [
            route("long-then-backup", ("long", "openai"), ("backup", "openai"))
        ]
        config = (
            'storage: {database: "memory://", spool_dir: "${SPOOL}"}\n'
            "providers:\n" + "\n".join(providers) + "\nroutes:\n" + "\n".join(routes) + "\n"
        )
        spool = str(tmp_path_factory.mktemp("spool"))
        with serve(create_app(parse_settings(config, {"SPOOL": spool}))) as url:
            yield url


def test_a_long_retry_after_does_not_stop_failover(hinted_gateway: str) -> None:
    answer = chat(hinted_gateway, "long-then-backup")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-aperture-provider"] == "backup"
    assert answer.headers["x-aperture-attempts"] == "2"


@pytest.mark.parametrize(
    ("hint", "low", "high"),
    [("long", 3600, 3600), ("huge", 86_400, 86_400), ("date", 110, 120), ("negative", None, None)],
)
def test_retry_hints_reach_the_client_as_clean_seconds(
    hinted_gateway: str, hint: str, low: int | None, high: int | None
) -> None:
    response = chat(hinted_gateway, f"{hint}-alone")
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    if low is None or high is None:
        assert "retry-after" not in response.headers
    else:
        assert low <= int(response.headers["retry-after"]) <= high
