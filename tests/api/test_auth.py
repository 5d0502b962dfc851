from collections.abc import Iterator

import httpx
import msgspec
import pytest

from aperture.app import create_app
from aperture.settings import AuthSettings, Settings
from tests.servers import serve


@pytest.fixture(scope="module")
def locked_gateway(gateway_settings: Settings) -> Iterator[str]:
    settings = msgspec.structs.replace(gateway_settings, auth=AuthSettings(master_key="sk-master"))
    with serve(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"x-api-key": "sk-maste"},
        {"authorization": "sk-master"},
    ],
)
def test_missing_or_wrong_keys_get_one_uniform_401(
    locked_gateway: str, headers: dict[str, str]
) -> None:
    for path in ("/v1/models", "/v1/chat/completions"):
        response = (
            httpx.post(f"{locked_gateway}{path}", json={}, headers=headers)
            if "chat" in path
            else httpx.get(f"{locked_gateway}{path}", headers=headers)
        )
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("invalid_api_key", "authentication_error")
        assert "sk-master" not in response.text


@pytest.mark.parametrize(
    "headers", [{"authorization": "Bearer sk-master"}, {"x-api-key": "sk-master"}]
)
def test_the_master_key_is_accepted_either_way(
    locked_gateway: str, headers: dict[str, str]
) -> None:
    response = httpx.post(
        f"{locked_gateway}/v1/chat/completions",
        json={"model": "demo-text", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
