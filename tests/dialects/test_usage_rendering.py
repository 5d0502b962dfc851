"""Cache and reasoning usage in each dialect's shape, checked against the official SDKs'
types: what the provider read from and wrote to its prompt cache is never lost."""

from __future__ import annotations

import json

import pydantic
from anthropic.types import Message as AnthropicMessage
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from aperture.dialects.anthropic.outbound import render_response as render_messages
from aperture.dialects.openai.outbound import render_response as render_chat
from aperture.dialects.responses.outbound import render_response as render_responses
from aperture.model import ChatResponse, Choice, Thought, Usage

# Of 5000 prompt tokens, 3000 read from the cache and 1000 written to it.
USAGE = Usage(
    prompt_tokens=5000,
    completion_tokens=120,
    cached_tokens=3000,
    cache_creation_tokens=1000,
    reasoning_tokens=20,
)
ANSWER = ChatResponse(
    id="chatcmpl-1",
    model="claude-sonnet-4-5",
    created=1,
    choices=(
        Choice(
            index=0,
            content="Scattering.",
            finish_reason="stop",
            reasoning=(Thought("Light scatters.", "c2ln"),),
        ),
    ),
    usage=USAGE,
)


def test_chat_completions_usage_has_cached_and_written_tokens() -> None:
    body = json.loads(render_chat(ANSWER, "claude"))
    completion = ChatCompletion.model_validate(body)
    assert completion.usage is not None
    details = completion.usage.prompt_tokens_details
    assert details is not None
    assert (details.cached_tokens, details.cache_write_tokens) == (3000, 1000)
    assert completion.usage.prompt_tokens == 5000
    assert body["choices"][0]["message"]["reasoning_content"] == "Light scatters."


def test_responses_usage_has_cached_and_written_tokens() -> None:
    response = Response.model_validate(json.loads(render_responses(ANSWER, "claude")))
    assert response.usage is not None
    details = response.usage.input_tokens_details
    assert (details.cached_tokens, details.cache_write_tokens) == (3000, 1000)
    assert response.usage.output_tokens_details.reasoning_tokens == 20
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Light scatters."
    assert reasoning.encrypted_content == "c2ln"


def test_messages_usage_splits_the_prompt_as_anthropic_does() -> None:
    message = pydantic.TypeAdapter(AnthropicMessage).validate_json(render_messages(ANSWER, "c"))
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (1000, 3000)
    assert usage.cache_creation_input_tokens == 1000
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == ("Light scatters.", "c2ln")
