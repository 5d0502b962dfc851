"""The bookkeeping stream parsers share: the role once per choice, canonical tool-call
indexes in stream order, an empty-arguments call closed with ``{}``, and which choices have
finished."""

from __future__ import annotations

from aperture.model import Delta, Finish, ToolCallDelta, Usage, UsageReport
from aperture.providers._stream import StreamAssembler


def test_the_role_opens_each_choice_once_and_empty_text_says_nothing() -> None:
    asm = StreamAssembler()
    asm.text("")
    assert asm.drain() == []
    asm.text("Hel")
    asm.text("lo")
    asm.text("Hi", 1)
    assert asm.drain() == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Hel"),
        Delta(index=0, content="lo"),
        Delta(index=1, role="assistant", content=""),
        Delta(index=1, content="Hi"),
    ]
    assert asm.drain() == []


def test_provider_keys_become_canonical_indexes_in_stream_order() -> None:
    asm = StreamAssembler()
    asm.role()
    asm.text("Let me look.")
    asm.tool_start(3, "call_a", "search")  # the provider's block 3 is the first call
    asm.tool_start(1, "call_b", "fetch")
    asm.tool_args(1, '{"url":')
    asm.tool_args(3, '{"q": "x"}')
    asm.tool_args(1, ' "u"}')
    asm.tool_args(7, '{"never": "started"}')
    asm.tool_end(3)
    asm.tool_end(1)
    assert [e for e in asm.drain() if isinstance(e, Delta) and e.tool_calls] == [
        Delta(tool_calls=(ToolCallDelta(0, "call_a", "search", ""),)),
        Delta(tool_calls=(ToolCallDelta(1, "call_b", "fetch", ""),)),
        Delta(tool_calls=(ToolCallDelta(1, arguments='{"url":'),)),
        Delta(tool_calls=(ToolCallDelta(0, arguments='{"q": "x"}'),)),
        Delta(tool_calls=(ToolCallDelta(1, arguments=' "u"}'),)),
    ]
    assert asm.tool_count() == 2


def test_a_call_without_arguments_is_closed_with_an_empty_object() -> None:
    asm = StreamAssembler()
    asm.tool_start(0, "call_a", "now", arguments="")
    asm.tool_end(0)
    asm.tool_end(0)  # closed once
    assert asm.drain()[-1:] == [Delta(tool_calls=(ToolCallDelta(0, arguments="{}"),))]


def test_a_reused_key_after_its_end_is_a_new_call() -> None:
    asm = StreamAssembler()
    for call_id in ("a", "b"):
        asm.tool_start(0, call_id, "f")
        asm.tool_args(0, "{}")
        asm.tool_end(0)
    starts = [e.tool_calls[0] for e in asm.drain() if isinstance(e, Delta) and e.tool_calls]
    assert [(c.index, c.id) for c in starts if c.id] == [(0, "a"), (1, "b")]


def test_whole_calls_and_keyed_indexes_count_per_choice() -> None:
    asm = StreamAssembler()
    asm.tool_call("c0", "f", "{}", 0)
    asm.tool_call("c1", "g", "{}", 1)
    assert asm.tool_index(("choice0", "id-x"), 0) == 1
    assert asm.tool_index(("choice0", "id-x"), 0) == 1  # the same call, seen again
    assert asm.tool_index(("choice1", "id-y"), 1) == 1
    assert (asm.tool_count(0), asm.tool_count(1), asm.tool_count(2)) == (2, 2, 0)


def test_the_stream_is_finished_when_every_choice_seen_is() -> None:
    asm = StreamAssembler()
    assert not asm.all_finished
    asm.text("a", 0)
    asm.text("b", 1)
    asm.finish(None, 0)  # not finished yet
    asm.finish("stop", 0)
    assert not asm.all_finished
    asm.finish("length", 1)
    asm.usage(Usage(prompt_tokens=3, completion_tokens=2))
    assert asm.all_finished
    assert asm.drain()[-3:] == [
        Finish(0, "stop"),
        Finish(1, "length"),
        UsageReport(Usage(prompt_tokens=3, completion_tokens=2)),
    ]
