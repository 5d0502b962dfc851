"""Vision chat through the real gateway over HTTP, with the official OpenAI SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests import sample_images
from tests.upstreams import Recorder

JPEG = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")
PNG = sample_images.data_uri(sample_images.png(30, 20), "image/png")


def ask(text: str, *images: str, detail: str | None = None) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = [{"type": "text", "text": text}]
    for url in images:
        image: dict[str, object] = {"url": url}
        if detail:
            image["detail"] = detail
        parts.append({"type": "image_url", "image_url": image})
    return [{"role": "user", "content": parts}]


def test_the_seed_recipe_answers_with_what_the_provider_saw(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="demo-vision",
        messages=ask("Describe this image in one sentence.", JPEG),  # type: ignore[arg-type]
        max_tokens=200,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == (
        "Saw 1 image: #1 image/jpeg 64x48 detail=auto. "
        'Asked: "Describe this image in one sentence."'
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "demo-vision"
    assert completion.usage is not None and completion.usage.prompt_tokens > 85
    assert raw.headers["x-aperture-provider"] == "emu"
    assert raw.headers["x-aperture-model"] == "emulator-vision"
    assert raw.headers["x-aperture-attempts"] == "1"
    assert raw.headers["x-request-id"].startswith("req_")


def test_streaming_gives_the_same_answer_and_usage_on_request(client: openai.OpenAI) -> None:
    messages = ask("Compare them.", JPEG, PNG, detail="low")
    whole = client.chat.completions.create(model="demo-vision", messages=messages)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="demo-vision",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert "Saw 2 images: #1 image/jpeg 64x48 detail=low, #2 image/png 30x20 detail=low." in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


def test_without_include_usage_no_usage_chunk_is_sent(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="demo-vision",
            messages=ask("Hi", JPEG),
            stream=True,  # type: ignore[arg-type]
        )
    )
    assert all(c.choices for c in chunks)


def test_images_in_earlier_turns_and_system_prompts_reach_the_provider(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(
        model="vision-alias",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "assistant", "content": "A red rectangle."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            *ask("And this one?", JPEG),  # type: ignore[list-item]
        ],
    )
    content = completion.choices[0].message.content or ""
    assert content.startswith("Saw 2 images: #1 image/png 30x20 detail=auto, #2 image/jpeg 64x48")
    assert 'Asked: "And this one?"' in content


def test_a_wrong_declared_type_is_corrected_before_it_leaves(client: openai.OpenAI) -> None:
    # The emulator rejects a declared type that does not match the bytes, as Anthropic does.
    lying = JPEG.replace("image/jpeg", "image/png", 1)
    completion = client.chat.completions.create(model="demo-vision", messages=ask("?", lying))  # type: ignore[arg-type]
    assert "#1 image/jpeg 64x48" in (completion.choices[0].message.content or "")


def test_the_c1_shortcut_rebuilds_the_content_parts(http: httpx.Client) -> None:
    response = http.post(
        "/c1/chat",
        json={
            "model": "demo-vision",
            "message": "Describe this image",
            "images": [{"url": JPEG}],
            "tools": [],
            "tool_choice": "auto",
            "response_format": {"type": "text"},
            "stream": False,
            "max_tokens": 200,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == (
        'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "Describe this image"'
    )


def test_the_c1_parts_form_and_stream(http: httpx.Client) -> None:
    body = {
        "model": "demo-vision",
        "message": [
            {"type": "text", "text": "Compare these two photos"},
            {"type": "image_url", "image_url": {"url": JPEG}},
            {"type": "image_url", "image_url": {"url": PNG}},
        ],
        "stream": True,
    }
    with http.stream("POST", "/c1/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines[:-1]
    )
    assert text.startswith("Saw 2 images: #1 image/jpeg 64x48 detail=auto, #2 image/png 30x20")


def test_url_passthrough_forwards_the_url(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="url-passthrough",
        messages=ask("What logo?", "https://example.com/logo.png"),  # type: ignore[arg-type]
    )
    assert "#1 url image from example.com" in (completion.choices[0].message.content or "")


def test_what_the_provider_receives(client: openai.OpenAI, recorder: tuple[Recorder, str]) -> None:
    """Unknown fields pass through, credentials come from config, never from the client."""
    rec, _ = recorder
    client.chat.completions.create(
        model="recorded-vision",
        messages=ask("Hi", PNG),  # type: ignore[arg-type]
        max_completion_tokens=50,
        temperature=0.2,
        extra_body={"top_k": 5, "chat_template_kwargs": {"enable_thinking": False}},
        extra_headers={"x-team": "attacker", "authorization": "Bearer client-key"},
    )
    sent = json.loads(rec.bodies[-1])
    headers = rec.headers[-1]
    assert sent["model"] == "emulator-vision"
    assert sent["top_k"] == 5 and sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.2
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": PNG}}
    assert headers["authorization"] == "Bearer rec-key"
    assert headers["x-team"] == "vision"


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "extra_headers"])
def test_fields_that_would_redirect_traffic_are_refused(http: httpx.Client, field: str) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "demo-vision", "messages": ask("Hi"), field: "http://evil.example"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


def test_tools_and_tool_choice(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "describe",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="demo-vision",
        messages=ask("Use the tool", JPEG),
        tools=tools,
        tool_choice="required",  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "describe"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"text": "Use the tool"}  # type: ignore[union-attr]

    stream = client.chat.completions.create(
        model="demo-vision",
        messages=ask("Use the tool", JPEG),  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "describe"}},
        stream=True,
    )
    arguments = ""
    names = []
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            arguments += delta.function.arguments or ""  # type: ignore[union-attr]
            names.append(delta.function.name)  # type: ignore[union-attr]
    assert json.loads(arguments) == {"text": "Use the tool"}
    assert "describe" in names


def test_json_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="demo-vision",
        messages=ask("Count them as JSON", JPEG, PNG),  # type: ignore[arg-type]
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content or "") == {
        "images": 2,
        "asked": "Count them as JSON",
    }


def test_max_tokens_cuts_the_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="demo-vision",
        messages=ask("Describe", JPEG),
        max_tokens=3,  # type: ignore[arg-type]
    )
    assert completion.choices[0].finish_reason == "length"
    assert len((completion.choices[0].message.content or "").split()) == 3
