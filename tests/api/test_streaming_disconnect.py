import httpx

from tests.upstreams import SlowStream


def test_a_client_that_goes_away_cancels_the_upstream_call(
    gateway_url: str, slow_upstream: tuple[SlowStream, str]
) -> None:
    slow, _ = slow_upstream
    body = {
        "model": "slow-model",
        "messages": [{"role": "user", "content": "count"}],
        "stream": True,
    }
    with (
        httpx.Client(base_url=gateway_url, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith("data: ") and '"content":"0 "' in first
    # The upstream would run for 10 s; the gateway must drop it as soon as we leave.
    assert slow.started.is_set()
    assert slow.closed.wait(timeout=3), "the upstream stream was not cancelled"
