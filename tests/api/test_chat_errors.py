"""Every error code of the catalog, with its exact body, through the real gateway."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import openai
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests import sample_images
from tests.servers import serve_together

JPEG = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


def post(http: httpx.Client, body: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    return http.post(path, json=body)


def image_request(url: str, model: str = "demo-vision", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What logo?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        **extra,
    }


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    return error


def test_an_image_url_gets_exactly_the_seeds_400(http: httpx.Client) -> None:
    response = post(http, image_request("https://example.com/logo.png", model="gpt-5.5-pro"))
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "image_url_not_supported"
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert error["message"].startswith(
        "Cloud providers don't fetch URLs server-side. Encode the image as a base64 data URI"
    )
    assert response.headers["x-should-retry"] == "false"


def test_the_openai_sdk_sees_the_same_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="demo-vision",
            messages=image_request("https://example.com/a.jpg")["messages"],
        )
    assert caught.value.code == "image_url_not_supported"
    assert caught.value.param == "messages[0].content[1].image_url.url"


@pytest.mark.parametrize(
    ("url", "code", "status"),
    [
        ("data:;base64," + JPEG.split(",", 1)[1], "image_decode_error", 400),
        (JPEG.split(",", 1)[1], "image_decode_error", 400),
        ("data:image/jpeg;base64,not*base64", "image_decode_error", 400),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "image_decode_error", 400),
        (
            sample_images.data_uri(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
            "unsupported_image_format",
            400,
        ),
        (sample_images.data_uri(b"%PDF-1.4 x", "application/pdf"), "unsupported_image_format", 400),
        ("file:///etc/passwd", "image_url_not_allowed", 400),
        (
            sample_images.data_uri(sample_images.png(2100, 2000), "image/png"),
            "image_too_large",
            413,
        ),
        ("data:image/png;base64," + "A" * 1_400_000, "image_too_large", 413),
    ],
)
def test_bad_images_are_refused_with_their_path(
    http: httpx.Client, url: str, code: str, status: int
) -> None:
    error = error_of(post(http, image_request(url)), status)
    assert error["code"] == code
    assert error["param"] == "messages[0].content[1].image_url.url"


def test_c1_errors_point_into_the_images_array(http: httpx.Client) -> None:
    body = {"model": "demo-vision", "message": "Hi", "images": [{"url": JPEG}, {"url": "x"}]}
    error = error_of(post(http, body, "/c1/chat"), 400)
    assert (error["code"], error["param"]) == ("image_decode_error", "images[1].url")
    body = {
        "model": "demo-vision",
        "message": [
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "x"}},
        ],
    }
    error = error_of(post(http, body, "/c1/chat"), 400)
    assert error["param"] == "message[1].image_url.url"


def test_too_many_images(http: httpx.Client) -> None:
    request = image_request(JPEG, model="two-images")
    request["messages"][0]["content"] *= 2
    request["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": JPEG}})
    error = error_of(post(http, request), 400)
    assert error["code"] == "too_many_images"
    assert "takes at most 2" in error["message"]


def test_an_image_to_a_text_model_names_the_models_that_can_see(http: httpx.Client) -> None:
    error = error_of(post(http, image_request(JPEG, model="demo-text")), 400)
    assert error["code"] == "unsupported_capability"
    assert error["param"] == "messages[0].content[1]"
    assert "demo-vision" in error["message"] and "gpt-5.5-pro" in error["message"]
    assert "demo-text" not in error["message"].split("accept images:")[1]


def test_audio_to_a_model_without_audio(http: httpx.Client) -> None:
    request = image_request(JPEG)
    request["messages"][0]["content"][1] = {
        "type": "input_audio",
        "input_audio": {"data": "AAAA", "format": "wav"},
    }
    error = error_of(post(http, request), 400)
    assert error["code"] == "unsupported_capability"
    assert "recorded-vision" in error["message"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_below_a_models_minimum(http: httpx.Client, field: str) -> None:
    error = error_of(post(http, image_request(JPEG, model="gpt-5.5-pro", **{field: 100})), 400)
    assert error["code"] == "max_tokens_below_minimum"
    assert error["param"] == field
    assert ">= 200" in error["message"]


def test_unknown_model(http: httpx.Client) -> None:
    error = error_of(post(http, image_request(JPEG, model="gpt-99")), 404)
    assert (error["code"], error["param"], error["type"]) == (
        "model_not_found",
        "model",
        "not_found_error",
    )


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b'{"model":"demo-vision","model":"demo-text","messages":[]}', "invalid_json", "model"),
        (
            b'{"model":"demo-vision","messages":[],"tools":[{"type":"function","function":'
            b'{"name":"f","parameters":{"a":' + b"[" * 3000 + b"]" * 3000 + b"}}}]}",
            "invalid_json",
            None,
        ),
        (
            b'{"model":"m","messages":' + b"[" * 3000 + b"]" * 3000 + b"}",
            "invalid_request",
            "messages[0]",
        ),
        (
            b'{"model":"demo-vision","messages":[],"max_tokens":1e999}',
            "invalid_request",
            "max_tokens",
        ),
        (
            b'{"model":"demo-vision","messages":[],"max_tokens":' + b"9" * 5000 + b"}",
            "invalid_request",
            "max_tokens",
        ),
        (b'{"model":"demo-vision","messages":[],"temperature":NaN}', "invalid_json", None),
        (b'{"model":42,"messages":[]}', "invalid_request", "model"),
        (b'{"messages":[]}', "invalid_request", "model"),
        (b"[]", "invalid_request", None),
        (
            b'{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}',
            "invalid_request",
            "messages[0].content[0].image_url",
        ),
        (
            b'{"model":"m","messages":[{"role":"wizard","content":"x"}]}',
            "invalid_request",
            "messages[0].role",
        ),
        (b'{"model":"demo-vision","messages":[],"max_tokens":0}', "invalid_request", "max_tokens"),
    ],
)
def test_malformed_bodies_are_clear_400s(
    http: httpx.Client, body: bytes, code: str, param: str | None
) -> None:
    response = http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    error = error_of(response, 400)
    assert (error["code"], error["param"]) == (code, param)


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b"x" * 3_100_000)
    error = error_of(response, 413)
    assert error["code"] == "request_too_large"

    def chunked():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 100_000

    response = http.post("/v1/chat/completions", content=chunked())
    assert error_of(response, 413)["code"] == "request_too_large"


def test_unknown_routes_and_methods_are_json_errors(http: httpx.Client) -> None:
    assert error_of(http.get("/v1/nope"), 404)["code"] == "not_found"
    assert error_of(http.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("model", "status", "code", "retry"),
    [
        ("failing-503", 503, "upstream_unavailable", None),
        ("failing-429", 429, "rate_limit_exceeded", "true"),
        ("failing-quota", 429, "insufficient_quota", "false"),
        ("failing-400", 400, "upstream_error", "false"),
        ("dead-model", 503, "upstream_unavailable", None),
    ],
)
def test_upstream_failures_map_to_the_catalog(
    http: httpx.Client, model: str, status: int, code: str, retry: str | None
) -> None:
    response = post(http, image_request(JPEG, model=model))
    error = error_of(response, status)
    assert error["code"] == code
    assert response.headers.get("x-should-retry", "true") == (retry or "true")
    if model == "failing-429":
        assert response.headers["retry-after"] == "1"


def test_an_error_after_the_stream_started_is_one_in_band_event(http: httpx.Client) -> None:
    body = image_request(JPEG, model="failing-midstream", stream=True)
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in lines[-1]
    assert '"error"' in lines[-1] and "upstream_unavailable" in lines[-1]
    assert sum('"error"' in line for line in lines) == 1


def test_the_sdk_raises_on_a_mid_stream_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="failing-midstream", messages=image_request(JPEG)["messages"], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


# Invalid UTF-8 and echoed values, on every endpoint that reads a body or a key.

CHAT_ENDPOINTS = {
    "/v1/chat/completions": b'{"model":"demo-vision","messages":[{"role":"user","content":"%s"}]}',
    "/c1/chat": b'{"model":"demo-vision","message":"%s"}',
    "/v1/messages": (
        b'{"model":"claude-vision","max_tokens":9,"messages":[{"role":"user","content":"%s"}]}'
    ),
}
BAD_BYTES = {
    "a lone continuation byte": b"caf\x80",
    "a truncated sequence": b"caf\xc3",
    "an overlong encoding": b"\xc0\xaf",
    "a surrogate encoded in UTF-8": b"\xed\xa0\x80",
    "a byte that is never UTF-8": b"\xff",
}


def _invalid_json_at(response: httpx.Response, at: int) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    assert error["code"] == "invalid_json"
    assert f"at byte {at}." in error["message"]
    return str(error["message"])


@pytest.mark.parametrize("bad", BAD_BYTES.values(), ids=list(BAD_BYTES))
@pytest.mark.parametrize("path", list(CHAT_ENDPOINTS))
def test_invalid_utf8_in_a_message_is_a_400_with_its_byte(
    http: httpx.Client, path: str, bad: bytes
) -> None:
    body = CHAT_ENDPOINTS[path].replace(b"%s", b"hello " + bad)
    at = body.index(bad) + (3 if bad.startswith(b"caf") else 0)
    _invalid_json_at(http.post(path, content=body), at)


@pytest.mark.parametrize("path", list(CHAT_ENDPOINTS))
@pytest.mark.parametrize(
    "where",
    [
        # A key, a passed-through value and a skipped nested field: msgspec never decodes
        # them to text, so only a check of the whole body catches them.
        b'"k\xff":1,',
        b'"x_custom":"v\xfe",',
        b'"metadata":{"deep":[{"n\xc3":"\xe9t\xe9"}]},',
    ],
)
def test_invalid_utf8_anywhere_in_a_body_is_a_400(
    http: httpx.Client, path: str, where: bytes
) -> None:
    body = b"{" + where + CHAT_ENDPOINTS[path].replace(b"%s", b"hi")[1:]
    bad = next(i for i, byte in enumerate(body) if byte >= 0x80)
    _invalid_json_at(http.post(path, content=body), bad)


def test_invalid_utf8_in_a_data_uri_is_a_400(http: httpx.Client) -> None:
    body = msgspec.json.encode(image_request(JPEG))
    cut = body.index(b"base64,") + 20
    body = body[:cut] + b"\xff" + body[cut:]
    _invalid_json_at(http.post("/v1/chat/completions", content=body), cut)
    body = msgspec.json.encode({"model": "demo-vision", "message": "x", "images": [{"url": JPEG}]})
    cut = body.index(b"base64,") + 40
    body = body[:cut] + b"\x80\x80" + body[cut:]
    _invalid_json_at(http.post("/c1/chat", content=body), cut)


def test_valid_utf8_still_passes(http: httpx.Client) -> None:
    body = CHAT_ENDPOINTS["/v1/chat/completions"].replace(b"%s", "café 😀 日本".encode())
    response = http.post("/v1/chat/completions", content=body)
    assert response.status_code == 200, response.text


def test_a_huge_echoed_model_name_makes_a_short_error(http: httpx.Client) -> None:
    name = "m" * 2_500_000
    for path, body in [
        ("/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": "x"}]}),
        ("/c1/chat", {"model": name, "message": "x"}),
        (
            "/v1/messages",
            {"model": name, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        ),
    ]:
        response = http.post(path, json=body)
        assert response.status_code == 404, response.text[:300]
        assert len(response.content) < 1000
        assert "(2500000 characters)" in response.text


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        # msgspec's own messages quote the value: an unknown enum, an unknown field.
        (
            {"model": "demo-vision", "messages": [{"role": "r" * 2_000_000, "content": "x"}]},
            400,
            "messages[0].role",
        ),
        (
            {"model": "demo-vision", "message": "x", "images": [{"url": JPEG, "k" * 2_000_000: 1}]},
            400,
            "images[0]",
        ),
    ],
)
def test_msgspec_messages_that_embed_a_value_are_cut(
    http: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    path = "/c1/chat" if "message" in body else "/v1/chat/completions"
    response = http.post(path, json=body)
    error = error_of(response, status)
    assert error["param"] == param
    assert len(response.content) < 1000


def test_a_huge_duplicated_key_is_cut_in_message_and_param(http: httpx.Client) -> None:
    key = b"k" * 1_000_000
    body = b'{"model":"demo-vision","messages":[],"' + key + b'":1,"' + key + b'":2}'
    response = http.post("/v1/chat/completions", content=body)
    error = error_of(response, 400)
    assert error["code"] == "invalid_json"
    assert len(response.content) < 1000
    assert "(1000000 characters)" in error["message"]
    assert error["param"].startswith("kkk") and len(error["param"]) < 300


def test_models_ignores_bytes_it_cannot_read(http: httpx.Client) -> None:
    response = http.get("/v1/models?include_meta=%ff%fe")
    assert response.status_code == 200, response.text


# The same on a gateway that requires keys, and on its admin API.

MASTER = {"authorization": "Bearer sk-master"}


@pytest.fixture(scope="module")
def locked_gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    state = tmp_path_factory.mktemp("locked")
    settings = msgspec.structs.replace(
        gateway_settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
        storage=StorageSettings(database=f"sqlite:///{state}/db.sqlite", spool_dir=str(state)),
    )
    with serve_together(*create_apps(settings)) as (public, admin):
        yield public, admin


@pytest.mark.parametrize(
    "header",
    [
        (b"authorization", b"Bearer sk-\xff\xfe\x80"),
        (b"authorization", b"Bearer sk-master\xc3"),
        (b"x-api-key", b"\xed\xa0\x80"),
        (b"authorization", b"Bearer " + b"\xff" * 6000),
    ],
)
def test_invalid_utf8_in_a_key_is_a_401(
    locked_gateway: tuple[str, str], header: tuple[bytes, bytes]
) -> None:
    public, admin = locked_gateway
    body = CHAT_ENDPOINTS["/v1/chat/completions"].replace(b"%s", b"hi")
    for method, url in [
        ("POST", f"{public}/v1/chat/completions"),
        ("POST", f"{public}/v1/messages"),
        ("POST", f"{public}/c1/chat"),
        ("GET", f"{public}/v1/models"),
        ("GET", f"{admin}/v1/admin/keys"),
        ("POST", f"{admin}/v1/admin/keys"),
    ]:
        response = httpx.request(method, url, content=body, headers=[header], timeout=30)
        assert response.status_code == 401, (url, response.text)
        assert len(response.content) < 1000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/admin/keys", b'{"name":"caf\xe9"}'),
        ("/v1/admin/keys", b'{"name":"ok","tenant\xff":"t"}'),
        ("/v1/admin/routes", b'{"id":"r","providers":[{"provider":"emu\x80"}]}'),
        ("/v1/admin/models", b'{"name":"m","provider":"emu","x":"\xc3"}'),
    ],
)
def test_invalid_utf8_on_the_admin_api_is_a_400(
    locked_gateway: tuple[str, str], path: str, body: bytes
) -> None:
    response = httpx.post(f"{locked_gateway[1]}{path}", content=body, headers=MASTER, timeout=30)
    bad = next(i for i, byte in enumerate(body) if byte >= 0x80)
    _invalid_json_at(response, bad)


def test_the_admin_api_cuts_what_it_echoes(locked_gateway: tuple[str, str]) -> None:
    admin = locked_gateway[1]
    long = "z" * 1_000_000
    for method, path, body in [
        ("POST", "/v1/admin/keys", {"name": "n", long: 1}),
        ("POST", "/v1/admin/routes", {"id": "r", "providers": [{"provider": long}]}),
        ("POST", "/v1/admin/models", {"name": "m", "provider": long}),
        ("PUT", "/v1/admin/models/m", {"name": long, "provider": "emu"}),
        ("GET", "/v1/admin/keys/" + "q" * 8000, None),
        ("GET", "/v1/admin/routes/" + "q" * 8000, None),
        ("GET", "/v1/admin/audit?" + "w" * 8000 + "=1", None),
        ("GET", "/v1/admin/audit?limit=" + "w" * 8000, None),
        ("GET", "/v1/admin/audit?since=" + "w" * 8000, None),
        ("PATCH", "/v1/admin/" + "p" * 8000, None),
    ]:
        response = httpx.request(method, f"{admin}{path}", json=body, headers=MASTER, timeout=30)
        assert 400 <= response.status_code < 500, (path[:40], response.text[:300])
        assert len(response.content) < 1000, (path[:40], response.text[:300])


def test_a_long_unknown_path_is_cut_in_the_404_and_405(http: httpx.Client) -> None:
    response = http.get("/v1/" + "p" * 60_000)
    assert error_of(response, 404)["code"] == "not_found"
    assert len(response.content) < 1000
    response = http.request("PATCH", "/v1/models")
    assert error_of(response, 405)["message"] == "PATCH is not allowed on '/v1/models'."
