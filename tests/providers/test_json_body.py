import base64
import json

import msgspec
import pytest

from aperture.model import ChatRequest, Image, InlineImage, Message, Target, Text
from aperture.providers import provider_for
from aperture.providers._bedrock_request import converse_body
from aperture.providers._json_body import Verbatim, encode_body, verbatim
from aperture.providers.bedrock import _encode as bedrock_encode
from aperture.settings import ProviderSettings

B64 = base64.b64encode(bytes(range(256)) * 400).decode()  # 136 KB: written unscanned
URI = "data:image/png;base64," + B64


def test_large_checked_strings_are_written_as_they_are_where_they_belong() -> None:
    value = {
        "a": [{"url": verbatim(URI)}, {"data": verbatim(URI, 22)}, "x"],
        "b": verbatim("small"),
        "c": {"d": verbatim(URI), "e": 1.5, "f": None},
    }
    assert isinstance(value["c"]["d"], Verbatim)  # type: ignore[index]
    expected = {
        "a": [{"url": URI}, {"data": B64}, "x"],
        "b": "small",
        "c": {"d": URI, "e": 1.5, "f": None},
    }
    encoded = encode_body(value)
    assert encoded == msgspec.json.encode(expected)


def test_small_strings_stay_plain_strings() -> None:
    assert verbatim("data:image/png;base64,AAAA", 22) == "AAAA"
    assert encode_body({"a": verbatim("xyz")}) == b'{"a":"xyz"}'


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        ("openai", None),
        ("openai", "responses"),
        ("azure", "responses"),
        ("anthropic", None),
        ("gemini", None),
        ("mistral", None),
        ("cohere", None),
        ("ollama", None),
    ],
)
def test_every_adapter_sends_a_large_checked_image_byte_for_byte(
    kind: str, wire: str | None
) -> None:
    jpeg = bytes(range(256)) * 400  # adapters pass the checked bytes on, whatever they are
    payload = base64.b64encode(jpeg).decode()
    assert len(payload) > 64 * 1024, "large enough to be written unscanned"
    url = "data:image/jpeg;base64," + payload
    info = InlineImage("image/jpeg", 600, 400, len(jpeg), 1, payload_offset=23)
    message = Message("user", (Text("what is this?"), Image(url, inline=info)))
    request = ChatRequest(model="m", messages=(message,), max_tokens=8)
    settings = ProviderSettings(
        name="p",
        kind=kind,  # type: ignore[arg-type]
        api_key="k",
        base_url="https://example.openai.azure.com" if kind == "azure" else None,
    )
    sent = provider_for(kind, wire).build_request(request, Target(settings, "m", wire)).body
    assert isinstance(sent, bytes)
    strings = _strings(json.loads(sent))
    assert url in strings or payload in strings
    assert sent.count(payload.encode()) == 1


def test_bedrock_sends_a_large_checked_image_byte_for_byte() -> None:
    payload = base64.b64encode(bytes(range(256)) * 400).decode()
    url = "data:image/png;base64," + payload
    info = InlineImage("image/png", 600, 400, 102400, 1, payload_offset=22)
    message = Message("user", (Image(url, inline=info),))
    request = ChatRequest(model="m", messages=(message,), max_tokens=8)
    body = bedrock_encode(converse_body(request))
    image = json.loads(body)["messages"][0]["content"][0]["image"]
    assert image == {"format": "png", "source": {"bytes": payload}}


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
