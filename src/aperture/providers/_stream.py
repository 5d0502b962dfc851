"""The bookkeeping every provider stream parser shares: a parser translates its provider's
events into calls on a ``StreamAssembler`` and returns what ``drain()`` gives it.

What the assembler owns, so that no parser hand-rolls it:

- the role: the first delta of each choice carries ``role="assistant"`` (``role``), sent once
  before anything else of that choice, for providers whose streams do not say it;
- tool-call indexes: a provider names its calls by its own key (a content block index, an
  event index, a call id); the assembler allocates canonical indexes 0, 1, 2... per choice in
  stream order (``tool_start``, ``tool_call``), routes argument fragments to them
  (``tool_args``), and closes a call that streamed no arguments with ``"{}"`` (``tool_end``),
  as clients parse the arguments;
- what finish reasons depend on: whether a choice called tools (``tool_count``), and which
  choices have finished (``all_finished``), for providers that end a stream by finishing
  every choice rather than by a terminator.

Mapping the provider's finish reasons and usage fields stays with the parser: that is
translation. The hot path allocates nothing beyond the canonical events themselves and the
list ``drain()`` returns.
"""

from __future__ import annotations

from collections.abc import Hashable

from aperture.model import (
    Delta,
    Finish,
    FinishReason,
    GeneratedImage,
    StreamEvent,
    Thought,
    TokenLogprob,
    ToolCallDelta,
    Usage,
    UsageReport,
)

__all__ = ["StreamAssembler"]


class _Call:
    __slots__ = ("choice", "has_arguments", "index")

    def __init__(self, choice: int, index: int) -> None:
        self.choice = choice
        self.index = index
        self.has_arguments = False


class StreamAssembler:
    """One stream's canonical events, built from a parser's calls; fresh per stream."""

    __slots__ = ("_calls", "_counts", "_events", "_finished", "_started")

    def __init__(self) -> None:
        self._events: list[StreamEvent] = []
        self._started: set[int] = set()
        """Choices whose role delta went out."""
        self._counts: dict[int, int] = {}
        """Tool calls allocated per choice: the next canonical index."""
        self._calls: dict[Hashable, _Call] = {}
        """The open tool calls, by the provider's key for them."""
        self._finished: set[int] = set()

    def drain(self) -> list[StreamEvent]:
        """The events built since the last drain, in order."""
        events = self._events
        self._events = []
        return events

    # -- content

    def role(self, choice: int = 0) -> None:
        """Open ``choice`` with the assistant role, once."""
        if choice not in self._started:
            self._started.add(choice)
            self._events.append(Delta(index=choice, role="assistant", content=""))

    def text(
        self,
        text: str | None,
        choice: int = 0,
        logprobs: tuple[TokenLogprob, ...] | None = None,
    ) -> None:
        """A piece of answer text (nothing when empty), after the role, with its tokens'
        log probabilities when the provider gave them."""
        if text:
            self.role(choice)
            self._events.append(Delta(index=choice, content=text, logprobs=logprobs or None))

    def image(self, image: GeneratedImage, choice: int = 0) -> None:
        """An image the model made, whole, after the role."""
        self.role(choice)
        self._events.append(Delta(index=choice, images=(image,)))

    def thought(self, thought: Thought, choice: int = 0) -> None:
        """A piece of reasoning (text, a signature or a redacted thought), after the role."""
        if thought.text or thought.signature or thought.redacted:
            self.role(choice)
            self._events.append(Delta(index=choice, thought=thought))

    def delta(self, delta: Delta) -> None:
        """A delta the provider's own chunk already shapes (OpenAI-like wires): as it is."""
        self._events.append(delta)

    # -- tool calls

    def tool_index(self, key: Hashable, choice: int = 0) -> int:
        """The canonical index of the provider's call ``key``, allocated on first sight."""
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(choice, self._allocate(choice))
        return call.index

    def tool_count(self, choice: int = 0) -> int:
        """How many tool calls ``choice`` has started: also the next one's index."""
        return self._counts.get(choice, 0)

    def tool_start(
        self, key: Hashable, call_id: str | None, name: str | None, arguments: str = ""
    ) -> None:
        """A call opening under the provider's ``key`` (choice 0), arguments to follow: always a
        new call, even if the provider reuses a key it never closed."""
        self.role()
        call = self._calls[key] = _Call(0, self._allocate(0))
        delta = ToolCallDelta(call.index, id=call_id, name=name, arguments=arguments)
        self._events.append(Delta(index=0, tool_calls=(delta,)))

    def tool_args(self, key: Hashable, fragment: str | None) -> None:
        """A fragment of an open call's JSON arguments; nothing for an unknown call."""
        call = self._calls.get(key)
        if call is not None and fragment:
            call.has_arguments = True
            delta = ToolCallDelta(call.index, arguments=fragment)
            self._events.append(Delta(index=call.choice, tool_calls=(delta,)))

    def tool_end(self, key: Hashable) -> None:
        """The call ``key`` is complete; one that streamed no arguments gets ``"{}"``."""
        call = self._calls.pop(key, None)
        if call is not None and not call.has_arguments:
            delta = ToolCallDelta(call.index, arguments="{}")
            self._events.append(Delta(index=call.choice, tool_calls=(delta,)))

    def tool_call(self, call_id: str, name: str, arguments: str, choice: int = 0) -> None:
        """A whole call in one piece (providers that never stream arguments)."""
        self.role(choice)
        delta = ToolCallDelta(self._allocate(choice), call_id, name, arguments)
        self._events.append(Delta(index=choice, tool_calls=(delta,)))

    # -- the end

    def finish(self, reason: FinishReason | None, choice: int = 0) -> None:
        """``choice`` finished for ``reason`` (nothing when None: not finished yet)."""
        if reason is not None:
            self._finished.add(choice)
            self._events.append(Finish(choice, reason))

    @property
    def all_finished(self) -> bool:
        """Every choice seen so far has finished (and at least one was seen)."""
        return bool(self._finished) and self._finished >= self._started

    def usage(self, usage: Usage) -> None:
        self._events.append(UsageReport(usage))

    def _allocate(self, choice: int) -> int:
        index = self._counts.get(choice, 0)
        self._counts[choice] = index + 1
        return index
