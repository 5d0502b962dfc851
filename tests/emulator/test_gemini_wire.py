"""The Gemini emulator over HTTP: auth, validation, answers, usage, streams, scripted faults,
and the official google-genai SDK talking to it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import gemini
from aperture.emulator.drawing import draw_picture
from tests.sample_images import gif, jpeg, png, webp
from tests.servers import serve

URL = "/gemini/v1beta/models/emulator-vision:generateContent"
STREAM_URL = "/gemini/v1beta/models/emulator-vision:streamGenerateContent"
AUTH = {"x-goog-api-key": "test-key"}


def app() -> Starlette:
    return Starlette(routes=[Mount("/gemini", routes=gemini.routes())])


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app()) as test_client:
        yield test_client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline(data: bytes, mime: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": b64(data)}}


def user(*parts: dict[str, Any], text: str = "Describe this image.") -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}, *parts]}


def body(*contents: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"contents": list(contents) or [user()], **fields}


def post(client: TestClient, payload: Any, url: str = URL, **headers: str) -> httpx2.Response:
    return client.post(url, json=payload, headers={**AUTH, **headers})


def error_of(response: httpx2.Response, code: int, status: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    payload: dict[str, dict[str, Any]] = response.json()
    assert set(payload) == {"error"}
    error = payload["error"]
    assert error["code"] == code and error["status"] == status
    return error


def text_of(payload: dict[str, Any]) -> str:
    parts = payload["candidates"][0]["content"].get("parts", [])
    return "".join(part.get("text", "") for part in parts)


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\r\n\r\n")
    blocks = raw.decode().split("\r\n\r\n")[:-1]
    assert all(block.startswith("data: ") for block in blocks)
    assert "[DONE]" not in raw.decode()
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


# ---------------------------------------------------------------------------------------------
# Auth, paths


def test_auth_header_or_key_query(client: TestClient) -> None:
    missing = client.post(URL, json=body())
    assert "unregistered callers" in error_of(missing, 403, "PERMISSION_DENIED")["message"]
    assert client.post(URL + "?key=abc", json=body()).status_code == 200
    bad = error_of(
        post(client, body(), **{"x-goog-api-key": "invalid-key"}), 400, "INVALID_ARGUMENT"
    )
    assert bad["details"][0]["reason"] == "API_KEY_INVALID"


def test_models_unknown_methods_and_urls(client: TestClient) -> None:
    models = client.get("/gemini/v1beta/models", headers=AUTH).json()["models"]
    assert [m["name"] for m in models] == [
        "models/emulator-vision",
        "models/emulator-text",
        "models/gemini-2.5-flash-image",
    ]
    error_of(
        post(client, body(), "/gemini/v1beta/models/emulator-vision:countWords"), 404, "NOT_FOUND"
    )
    error_of(
        post(client, body(), "/gemini/v9/models/emulator-vision:generateContent"), 404, "NOT_FOUND"
    )
    error_of(client.get("/gemini/nowhere", headers=AUTH), 404, "NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "valid role: user, model",
        ),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text parameter"),
        ({"contents": [user()], "messages": []}, 'Unknown name "messages": Cannot find field.'),
        ({"contents": [{"role": "user", "parts": [{"type": "text"}]}]}, 'Unknown name "type" at'),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"text": "a", "fileData": {"fileUri": "https://x.io/a.png"}}],
                    }
                ]
            },
            "Oneof field 'data' is already set",
        ),
        (body(generationConfig={"temperature": 3}), "temperature: must be in the range [0.0, 2.0]"),
        (body(generationConfig={"stopSequences": ["a"] * 6}), "must not exceed 5"),
        (
            body(
                generationConfig={
                    "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
                }
            ),
            "response_mime_type",
        ),
        (
            body(
                tools=[
                    {
                        "functionDeclarations": [
                            {"name": "f", "parameters": {"type": "OBJECT", "properties": {}}}
                        ]
                    }
                ]
            ),
            "should be non-empty for OBJECT type",
        ),
        (
            body(
                tools=[
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"a": {"type": "string"}},
                                    "additionalProperties": False,
                                },
                            }
                        ]
                    }
                ]
            ),
            'Unknown name "additionalProperties"',
        ),
        (body(tools=[{"functionDeclarations": [{"name": "9f"}]}]), "Invalid function name"),
        (
            body(
                toolConfig={
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}
                }
            ),
            "is not declared",
        ),
    ],
)
def test_invalid_requests(client: TestClient, payload: dict[str, Any], message: str) -> None:
    error = error_of(post(client, payload), 400, "INVALID_ARGUMENT")
    assert message in error["message"]


def test_snake_case_proto_names_are_accepted_like_google_does(client: TestClient) -> None:
    part = {"inline_data": {"mime_type": "image/png", "data": b64(png(8, 8))}}
    response = post(
        client, {"contents": [user(part)], "generation_config": {"max_output_tokens": 2}}
    )
    assert text_of(response.json()) == "Saw 1"


def test_images_must_be_bare_strict_base64(client: TestClient) -> None:
    prefixed = {
        "inlineData": {"mimeType": "image/png", "data": "data:image/png;base64," + b64(png())}
    }
    error = error_of(post(client, body(user(prefixed))), 400, "INVALID_ARGUMENT")
    assert error["message"] == (
        "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding "
        'failed for "data:image/png;base64"'
    )
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    spaced = {
        "inlineData": {"mimeType": "image/png", "data": b64(png())[:20] + " " + b64(png())[20:]}
    }
    error_of(post(client, body(user(spaced))), 400, "INVALID_ARGUMENT")
    # URL-safe and unpadded base64 are proto3 JSON too: the SDK sends URL-safe.
    urlsafe = base64.urlsafe_b64encode(jpeg()).decode().rstrip("=")
    ok = post(client, body(user({"inlineData": {"mimeType": "image/jpeg", "data": urlsafe}})))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (inline(gif(), "image/gif"), "Unsupported MIME type: image/gif"),
        (inline(png(), "image/jpeg"), "Provided image is not valid."),
        (inline(b"not an image", "image/png"), "Provided image is not valid."),
        (inline(webp(20, 10, frames=3), "image/webp"), "Provided image is not valid."),
        ({"fileData": {"fileUri": "gs://bucket/a.png"}}, "Invalid or unsupported file uri"),
    ],
)
def test_image_types_follow_gemini(client: TestClient, part: dict[str, Any], message: str) -> None:
    assert error_of(post(client, body(user(part))), 400, "INVALID_ARGUMENT")["message"].startswith(
        message
    )


def test_text_models_refuse_images(client: TestClient) -> None:
    url = "/gemini/v1beta/models/emulator-text:generateContent"
    error = error_of(
        post(client, body(user(inline(png(), "image/png"))), url), 400, "INVALID_ARGUMENT"
    )
    assert error["message"] == "Image input modality is not enabled for models/emulator-text"


# ---------------------------------------------------------------------------------------------
# Answers


def test_answer_usage_and_received_header(client: TestClient) -> None:
    payload = body(
        user(text="Earlier."),
        {"role": "model", "parts": [{"text": "Ok."}]},
        user(
            inline(png(64, 48), "image/png"),
            inline(jpeg(1000, 800), "image/jpeg"),
            {"fileData": {"fileUri": "https://example.com/a.webp", "mimeType": "image/webp"}},
            text="Compare.",
        ),
        systemInstruction={"parts": [{"text": "Be terse."}]},
    )
    response = post(client, payload)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = (
        "Saw 3 images: #1 image/png 64x48 detail=auto, #2 image/jpeg 1000x800 detail=auto, "
        '#3 url image from example.com detail=auto. Asked: "Compare." System: "Be terse."'
    )
    assert text_of(answer) == expected
    assert answer["candidates"][0]["finishReason"] == "STOP"
    usage = answer["usageMetadata"]
    image_tokens = 258 + 258 * 2 * 2 + 258  # small, 2x2 tiles of 768, a URL image
    assert usage["promptTokensDetails"][1] == {"modality": "IMAGE", "tokenCount": image_tokens}
    assert usage["candidatesTokenCount"] == len(expected.split())
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    types.GenerateContentResponse.model_validate(answer)
    assert json.loads(response.headers["x-emulator-received"]) == {
        "images": 3,
        "mimes": ["image/png", "image/jpeg", "url"],
        "sizes": ["64x48", "1000x800", "unknown"],
        "extra_fields": [],
    }


def test_media_resolution_sets_detail_and_low_costs_less(client: TestClient) -> None:
    parts = [
        inline(png(), "image/png"),
        {**inline(png(), "image/png"), "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"}},
    ]
    answer = post(
        client, body(user(*parts), generationConfig={"mediaResolution": "MEDIA_RESOLUTION_LOW"})
    ).json()
    assert "#1 image/png 64x48 detail=low, #2 image/png 64x48 detail=high" in text_of(answer)
    assert answer["usageMetadata"]["promptTokensDetails"][1]["tokenCount"] == 64 + 258


def test_json_stop_sequences_max_tokens_and_candidates(client: TestClient) -> None:
    json_answer = post(
        client, body(generationConfig={"responseMimeType": "application/json"})
    ).json()
    assert json.loads(text_of(json_answer)) == {"images": 0, "asked": "Describe this image."}
    stopped = post(client, body(generationConfig={"stopSequences": ["Asked"]})).json()
    assert text_of(stopped) == "Saw no images. "
    assert stopped["candidates"][0]["finishReason"] == "STOP"
    cut = post(client, body(generationConfig={"maxOutputTokens": 2, "candidateCount": 2})).json()
    assert [c["finishReason"] for c in cut["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert [c["index"] for c in cut["candidates"]] == [0, 1]
    assert cut["usageMetadata"]["candidatesTokenCount"] == 4


def test_forced_function_call(client: TestClient) -> None:
    declaration = {
        "name": "lookup",
        "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}},
    }
    tools = [{"functionDeclarations": [{"name": "other"}, declaration]}]
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}}
    answer = post(client, body(user(text="Find it."), tools=tools, toolConfig=config)).json()
    assert answer["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "lookup", "args": {"text": "Find it."}}}
    ]
    auto = post(
        client, body(tools=tools, toolConfig={"functionCallingConfig": {"mode": "AUTO"}})
    ).json()
    assert text_of(auto).startswith("Saw no images.")


def test_history_with_function_call_and_response(client: TestClient) -> None:
    payload = body(
        user(text="Weather?"),
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "w", "args": {}},
                    "thoughtSignature": "skip_thought_signature_validator",
                }
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "w", "response": {"output": "18C"}}}],
        },
    )
    assert text_of(post(client, payload).json()) == 'Saw no images. Asked: "Weather?"'
    wrong_side = body({"role": "user", "parts": [{"functionCall": {"name": "w", "args": {}}}]})
    error_of(post(client, wrong_side), 400, "INVALID_ARGUMENT")


# ---------------------------------------------------------------------------------------------
# Streams


def test_sse_stream_has_no_terminator_and_finishes_in_the_last_chunk(client: TestClient) -> None:
    response = post(client, body(user(inline(png(), "image/png"))), STREAM_URL + "?alt=sse")
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(response.content)
    pieces = [text_of(chunk) for chunk in chunks]
    assert (
        "".join(pieces)
        == 'Saw 1 image: #1 image/png 64x48 detail=auto. Asked: "Describe this image."'
    )
    assert all("finishReason" not in chunk["candidates"][0] for chunk in chunks[:-1])
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["candidatesTokenCount"] == len("".join(pieces).split())
    for chunk in chunks:
        types.GenerateContentResponse.model_validate(chunk)


def test_stream_without_alt_sse_is_a_json_array(client: TestClient) -> None:
    response = post(client, body(), STREAM_URL)
    assert response.headers["content-type"] == "application/json"
    chunks = response.json()
    assert "".join(text_of(c) for c in chunks) == 'Saw no images. Asked: "Describe this image."'


def test_function_call_streams_in_one_chunk(client: TestClient) -> None:
    tools = [{"functionDeclarations": [{"name": "lookup"}]}]
    payload = body(tools=tools, toolConfig={"functionCallingConfig": {"mode": "ANY"}})
    chunks = sse_chunks(post(client, payload, STREAM_URL + "?alt=sse").content)
    assert len(chunks) == 1
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "lookup"


# ---------------------------------------------------------------------------------------------
# Faults


def test_rate_limit_fault_carries_retry_info(client: TestClient) -> None:
    error = error_of(
        post(client, body(), **{"x-emulator-fault": "status=429"}), 429, "RESOURCE_EXHAUSTED"
    )
    kinds = {detail["@type"].rpartition(".")[2]: detail for detail in error["details"]}
    assert kinds["RetryInfo"]["retryDelay"] == "1s"
    assert "PerMinute" in kinds["QuotaFailure"]["violations"][0]["quotaId"]


def test_quota_fault_has_quota_failure_and_no_retry_info(client: TestClient) -> None:
    error = error_of(
        post(client, body(), **{"x-emulator-fault": "quota"}), 429, "RESOURCE_EXHAUSTED"
    )
    kinds = [detail["@type"].rpartition(".")[2] for detail in error["details"]]
    assert "QuotaFailure" in kinds and "RetryInfo" not in kinds


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("status=503", 503, "UNAVAILABLE"),
        ("status=500", 500, "INTERNAL"),
        ("status=504", 504, "DEADLINE_EXCEEDED"),
        ("delay=5,status=401", 401, "UNAUTHENTICATED"),
        ("status=404", 404, "NOT_FOUND"),
        ("bogus", 400, "INVALID_ARGUMENT"),
    ],
)
def test_scripted_statuses(client: TestClient, fault: str, code: int, status: str) -> None:
    error_of(post(client, body(), **{"x-emulator-fault": fault}), code, status)


def test_midstream_fault_ends_with_an_error_event(client: TestClient) -> None:
    response = post(client, body(), STREAM_URL + "?alt=sse", **{"x-emulator-fault": "midstream"})
    assert response.status_code == 200
    chunks = sse_chunks(response.content)
    assert len(chunks) == gemini.MIDSTREAM_CHUNKS + 1
    assert chunks[-1] == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }


# ---------------------------------------------------------------------------------------------
# The official SDK


@pytest.fixture(scope="module")
def sdk() -> Iterator[genai.Client]:
    with serve(app()) as base:
        options = types.HttpOptions(
            base_url=f"{base}/gemini", retry_options=types.HttpRetryOptions(attempts=1)
        )
        yield genai.Client(api_key="test-key", http_options=options)


def test_sdk_generates_streams_and_raises(sdk: genai.Client) -> None:
    image = types.Part(inline_data=types.Blob(data=png(64, 48), mime_type="image/png"))
    contents = types.Content(role="user", parts=[image, types.Part(text="What is it?")])
    config = types.GenerateContentConfig(
        system_instruction="Be terse.", media_resolution=types.MediaResolution.MEDIA_RESOLUTION_HIGH
    )
    answer = sdk.models.generate_content(model="emulator-vision", contents=contents, config=config)
    assert (
        answer.text
        == 'Saw 1 image: #1 image/png 64x48 detail=high. Asked: "What is it?" System: "Be terse."'
    )
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count
    pieces = [
        c.text for c in sdk.models.generate_content_stream(model="emulator-vision", contents="Hi")
    ]
    assert "".join(p or "" for p in pieces) == 'Saw no images. Asked: "Hi"'
    faulty = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-emulator-fault": "status=429"})
    )
    with pytest.raises(genai_errors.ClientError) as caught:
        sdk.models.generate_content(model="emulator-vision", contents="Hi", config=faulty)
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    midstream = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-emulator-fault": "midstream"})
    )
    with pytest.raises(genai_errors.ServerError):
        for _ in sdk.models.generate_content_stream(
            model="emulator-vision", contents="Hi there", config=midstream
        ):
            pass


def test_sdk_function_calling(sdk: genai.Client) -> None:
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="lookup",
                parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}},
            )
        ]
    )
    config = types.GenerateContentConfig(
        tools=[tool],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    answer = sdk.models.generate_content(
        model="emulator-vision", contents="Find it.", config=config
    )
    assert answer.function_calls is not None
    assert [(c.name, c.args) for c in answer.function_calls] == [("lookup", {"text": "Find it."})]


IMAGE_URL = "/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"


def test_an_image_model_answers_with_a_png_of_what_was_asked(client: TestClient) -> None:
    payload = body(
        user(text="A blue whale"), generationConfig={"responseModalities": ["TEXT", "IMAGE"]}
    )
    answer = post(client, payload, IMAGE_URL).json()
    parts = answer["candidates"][0]["content"]["parts"]
    assert "A blue whale" in parts[0]["text"]
    blob = parts[1]["inlineData"]
    assert blob["mimeType"] == "image/png"
    assert base64.b64decode(blob["data"], validate=True) == draw_picture("A blue whale")
    image = {"modality": "IMAGE", "tokenCount": gemini.PICTURE_TOKENS}
    assert image in answer["usageMetadata"]["candidatesTokensDetails"]
    # The answer is what google-genai reads as a GenerateContentResponse with inline bytes.
    parsed = types.GenerateContentResponse.model_validate(answer)
    assert parsed.candidates and parsed.candidates[0].content
    assert parsed.candidates[0].content.parts
    assert parsed.candidates[0].content.parts[1].inline_data


def test_images_only_and_streams(client: TestClient) -> None:
    only = post(client, body(generationConfig={"responseModalities": ["IMAGE"]}), IMAGE_URL)
    parts = only.json()["candidates"][0]["content"]["parts"]
    assert [list(p) for p in parts] == [["inlineData"]]
    raw = client.post(
        IMAGE_URL.replace("generateContent", "streamGenerateContent") + "?alt=sse",
        json=body(),
        headers=AUTH,
    ).content
    chunks = sse_chunks(raw)
    blobs = [
        p
        for c in chunks
        for p in c["candidates"][0]["content"].get("parts", [])
        if "inlineData" in p
    ]
    assert len(blobs) == 1 and "inlineData" in chunks[-1]["candidates"][0]["content"]["parts"][-1]


def test_a_text_model_refuses_image_output(client: TestClient) -> None:
    for modality in ("IMAGE", "AUDIO"):
        payload = body(generationConfig={"responseModalities": ["TEXT", modality]})
        error = error_of(post(client, payload), 400, "INVALID_ARGUMENT")
        assert "response modalities" in error["message"]
    bad = body(generationConfig={"responseModalities": ["PICTURE"]})
    error_of(post(client, bad, IMAGE_URL), 400, "INVALID_ARGUMENT")
