"""Step: the Responses API's kept conversations (``previous_response_id``, ``store``).

On the way in, a request that continues a stored answer gets that conversation put before
its new input (one read, by primary key), after its own ``instructions``, which are never
carried on; a stored answer of another tenant is as unknown as one never made. Output items
of kept answers that the input names by id (``item_reference``) are filled in first. Everything
after this step sees the whole conversation, so the images it holds pass intake, capability
checks and normalisation for the new model as if the client had sent them again.

Just before dispatch (``capture``), the new turns to keep are taken as the provider may see
them, after PII redaction. On the way back, the answer is captured as the client got it, and
the conversation with its answer is written, with its images by content hash, shielded like
the audit, before the answer's last bytes leave (a client continues at once). ``store:
false`` writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import anyio
import msgspec

from aperture.errors import (
    ItemNotFoundError,
    PreviousResponseNotFoundError,
    ServiceUnavailableError,
    quote,
)
from aperture.governance.keys import Principal
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    Delta,
    Finish,
    Image,
    Message,
    StoredItem,
    StreamEvent,
    Thought,
    ToolCall,
    Usage,
    UsageReport,
)
from aperture.model.locator import ShiftedLocator
from aperture.model.response import FinishReason
from aperture.pipeline import transcript
from aperture.pipeline.context import Conversation, RequestContext
from aperture.pipeline.step import After, StreamFilter
from aperture.storage import ResponseBlob, ResponseStore, StorageError, StoredResponse

__all__ = ["Continuation", "ResponseArchive", "owner_of"]

log = logging.getLogger("aperture.responses")

_ANSWER = msgspec.json.Decoder(ChatResponse)
_encode = msgspec.json.Encoder().encode
# Expired answers are never served (reads check the time); the purge only frees the space.
_PURGE_EVERY_S = 3600.0
_FIRST_PURGE_AFTER_S = 30.0
_RETRY = {"retry-after": "1"}


def owner_of(principal: Principal) -> str:
    """Who a principal's stored answers belong to: its tenant, else the key itself."""
    if principal.tenant is not None:
        return f"tenant:{principal.tenant}"
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return ""  # the master key, or an open gateway


def _not_found(response_id: str) -> PreviousResponseNotFoundError:
    return PreviousResponseNotFoundError(
        f"Previous response with id {quote(response_id)} not found.",
        param="previous_response_id",
    )


def _item_not_found(item: StoredItem) -> ItemNotFoundError:
    kind = {"text": "msg", "tool_call": "fc", "thought": "rs"}[item.part]
    item_id = f"{kind}_{item.response.removeprefix('resp_')}_{item.index}"
    return ItemNotFoundError(f"Item with id {quote(item_id)} not found.", param=item.param)


class ResponseArchive:
    """The kept answers, with who may see them and for how long."""

    def __init__(
        self,
        store: ResponseStore,
        *,
        retention_hours: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._retention = timedelta(hours=retention_hours)
        self._clock = clock

    async def find(self, principal: Principal, response_id: str) -> StoredResponse | None:
        """The kept answer, or None if unknown, expired or someone else's.

        Raises:
            ServiceUnavailableError: the database failed.
        """
        found = await self._read(principal, response_id, images=False)
        return None if found is None else found[0]

    async def _read(
        self, principal: Principal, response_id: str, *, images: bool = True
    ) -> tuple[StoredResponse, dict[str, ResponseBlob]] | None:
        try:
            found = await self._store.get(response_id, now=self._clock(), images=images)
        except StorageError as exc:
            raise ServiceUnavailableError(
                "Stored responses cannot be read right now; retry shortly.",
                param="previous_response_id",
                headers=_RETRY,
            ) from exc
        if found is None or found[0].owner != owner_of(principal):
            return None
        return found

    async def recall(
        self, principal: Principal, response_id: str
    ) -> tuple[tuple[Message, ...], list[Message]]:
        """The stored conversation (as stored) and the same turns ready to send again.

        Raises:
            PreviousResponseNotFoundError: unknown, expired or someone else's.
            ServiceUnavailableError: the database failed.
        """
        found = await self._read(principal, response_id)
        if found is None:
            raise _not_found(response_id)
        stored, blobs = found
        prior = transcript.decode(stored.conversation)
        try:
            return prior, transcript.restore(prior, blobs)
        except KeyError:  # a blob the foreign key should have kept: treat as gone
            raise _not_found(response_id) from None

    async def fill(
        self, principal: Principal, messages: tuple[Message, ...], items: tuple[StoredItem, ...]
    ) -> tuple[Message, ...]:
        """``messages`` with each stand-in replaced by the kept answer's piece it names (one
        read per answer). A named thought the answer did not keep is left out: reasoning is
        the provider's to check, and none is better than an empty one.

        Raises:
            ItemNotFoundError: the answer is unknown, expired or someone else's, or has no
                such piece.
            ServiceUnavailableError: the database failed.
        """
        answers: dict[str, Choice | None] = {}
        out = list(messages)
        dropped: set[tuple[int, int]] = set()
        for item in items:
            if item.response not in answers:
                stored = await self.find(principal, item.response)
                answer = self.answer(stored) if stored is not None else None
                answers[item.response] = answer.choices[0] if answer and answer.choices else None
            choice = answers[item.response]
            message = out[item.message]
            if item.part == "thought":
                kept = list(choice.reasoning or ()) if choice else []
                thoughts = list(message.reasoning or ())
                if item.index < len(kept):
                    thoughts[item.slot] = kept[item.index]
                elif choice is None:
                    raise _item_not_found(item)
                else:
                    dropped.add((item.message, item.slot))
                out[item.message] = msgspec.structs.replace(message, reasoning=tuple(thoughts))
                continue
            if item.part == "text":
                text = (choice.content or choice.refusal) if choice else None
                if not text:
                    raise _item_not_found(item)
                out[item.message] = msgspec.structs.replace(message, content=text)
                continue
            calls = (choice.tool_calls or ()) if choice else ()
            if item.index >= len(calls):
                raise _item_not_found(item)
            placed = list(message.tool_calls or ())
            placed[item.slot] = calls[item.index]
            out[item.message] = msgspec.structs.replace(message, tool_calls=tuple(placed))
        for at, slot in sorted(dropped, reverse=True):
            reasoning = list(out[at].reasoning or ())
            del reasoning[slot]
            out[at] = msgspec.structs.replace(out[at], reasoning=tuple(reasoning) or None)
        return tuple(out)

    def answer(self, stored: StoredResponse) -> ChatResponse:
        """A kept answer, to render again."""
        return _ANSWER.decode(stored.answer)

    async def forget(self, principal: Principal, response_id: str) -> bool:
        """Delete a kept answer of this principal's; False if there was none to delete.

        Raises:
            ServiceUnavailableError: the database failed.
        """
        if await self.find(principal, response_id) is None:
            return False
        try:
            return await self._store.delete(response_id)
        except StorageError as exc:
            raise ServiceUnavailableError(
                "Stored responses cannot be deleted right now; retry shortly.", headers=_RETRY
            ) from exc

    async def keep(self, ctx: RequestContext, conversation: Conversation, model: str) -> None:
        """Write the conversation with its answer; a failure is logged, never raised (the
        client has its answer already)."""
        answer = conversation.answer
        if answer is None:
            return
        new = await transcript.store_images(ctx, conversation.new, conversation.start)
        if new is None:
            log.warning("response %s not stored: an image's bytes were not held", ctx.request_id)
            return
        turns, blobs = new
        reply = transcript.answer_turn(answer)
        messages = (*conversation.prior, *turns, *((reply,) if reply is not None else ()))
        digests = {
            part.url[len(transcript.REFERENCE) :]
            for message in messages
            if not isinstance(message.content, str | None)
            for part in message.content
            if isinstance(part, Image) and part.url.startswith(transcript.REFERENCE)
        }
        now = self._clock()
        record = StoredResponse(
            id=conversation.response_id,
            owner=conversation.owner,
            key_id=ctx.principal.key_id,
            model=model,
            created_at=now,
            expires_at=now + self._retention,
            conversation=transcript.encode(messages),
            answer=_encode(transcript.kept_answer(answer)),
            images=tuple(sorted(digests)),
        )
        try:
            await self._store.put(record, blobs)
        except (StorageError, ValueError) as exc:
            log.warning("response %s not stored: %s", conversation.response_id, exc)

    async def purge_periodically(self) -> None:
        """Forget expired answers now and then, for the app's lifetime."""
        # Not during the start: its write transaction would hold up the first requests.
        await anyio.sleep(_FIRST_PURGE_AFTER_S)
        while True:
            try:
                gone = await self._store.purge(self._clock())
                if gone:
                    log.info("purged %d expired stored responses", gone)
            except StorageError as exc:
                log.warning("purging stored responses failed: %s", exc)
            await anyio.sleep(_PURGE_EVERY_S)


class Continuation(After):
    """The stage that puts a stored conversation before the new input, and the after-step
    that keeps the answer."""

    def __init__(self, archive: ResponseArchive) -> None:
        self._archive = archive

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        thread = request.thread
        if thread is None:
            return request
        if thread.items:
            filled = await self._archive.fill(ctx.principal, request.messages, thread.items)
            request = msgspec.structs.replace(request, messages=filled)
        conversation = Conversation(
            response_id=f"resp_{ctx.request_id.removeprefix('req_')}",
            owner=owner_of(ctx.principal),
            store=thread.store,
            start=thread.instructions,
            new=request.messages[thread.instructions :],
        )
        ctx.conversation = conversation
        if thread.previous is None:
            return request
        prior, restored = await self._archive.recall(ctx.principal, thread.previous)
        conversation.prior = prior
        conversation.start = thread.instructions + len(prior)
        ctx.locator = ShiftedLocator(
            ctx.locator, thread.instructions, len(prior), "previous_response_id"
        )
        head = request.messages[: thread.instructions]
        messages = (*head, *restored, *conversation.new)
        return msgspec.structs.replace(request, messages=messages)

    async def capture(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        """The stage, just before dispatch, that takes the new turns to keep as the provider
        may see them: with personal data redacted and documents checked."""
        conversation = ctx.conversation
        if conversation is not None and conversation.store:
            conversation.new = request.messages[conversation.start :]
        return request

    async def answer(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        conversation = ctx.conversation
        if conversation is None:
            return response
        # The id the client sees is the id it may continue from.
        response = msgspec.structs.replace(response, id=conversation.response_id)
        conversation.answer = response
        if conversation.store:
            await self._keep(ctx, conversation)
        return response

    def stream(self, ctx: RequestContext) -> StreamFilter | None:
        conversation = ctx.conversation
        if conversation is None or not conversation.store:
            return None
        return _Capture(conversation, partial(self._keep, ctx, conversation))

    async def _keep(self, ctx: RequestContext, conversation: Conversation) -> None:
        # Before the answer's last bytes leave, not in the end: a client continues the
        # moment it has the answer (every tool loop does), on this instance or another, and
        # must find it. Shielded like the audit: a client that leaves now does not undo it.
        model = ctx.resolution.name if ctx.resolution is not None else ""
        with anyio.CancelScope(shield=True):
            await self._archive.keep(ctx, conversation, model)


class _Capture:
    """Gathers a stream's answer (first choice) as it passes, for the end to keep."""

    def __init__(self, conversation: Conversation, keep: Callable[[], Awaitable[None]]) -> None:
        self._conversation = conversation
        self._keep = keep
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._heads: dict[int, tuple[str, str]] = {}
        self._reason: FinishReason | None = None
        self._usage: Usage | None = None
        self._thoughts: list[Thought] = []
        self._thinking: list[str] = []  # the open thought's text

    def event(self, event: StreamEvent) -> list[StreamEvent]:
        match event:
            case Delta(index=0) as delta:
                if delta.thought is not None:
                    self._thought(delta.thought)
                if delta.content:
                    self._text.append(delta.content)
                if delta.refusal:
                    self._refusal.append(delta.refusal)
                for call in delta.tool_calls or ():
                    if call.index not in self._heads:
                        self._heads[call.index] = (call.id or "", call.name or "")
                    self._calls.setdefault(call.index, []).append(call.arguments or "")
            case Finish(index=0, reason=reason):
                self._reason = reason
            case UsageReport(usage=usage):
                self._usage = usage
            case _:
                pass
        return [event]

    def _thought(self, thought: Thought) -> None:
        # Text pieces build the open thought; its signature ends it; a redacted one is whole.
        if thought.redacted is not None:
            self._close_thought()
            self._thoughts.append(thought)
            return
        if thought.text:
            self._thinking.append(thought.text)
        if thought.signature is not None:
            self._thoughts.append(Thought("".join(self._thinking), thought.signature))
            self._thinking = []

    def _close_thought(self) -> None:
        if self._thinking:
            self._thoughts.append(Thought("".join(self._thinking)))
            self._thinking = []

    async def finish(self) -> list[StreamEvent]:
        self._close_thought()
        calls = tuple(
            ToolCall(self._heads[i][0], self._heads[i][1], "".join(self._calls[i]))
            for i in sorted(self._calls)
        )
        choice = Choice(
            index=0,
            content="".join(self._text) or None,
            tool_calls=calls or None,
            refusal="".join(self._refusal) or None,
            finish_reason=self._reason,
            reasoning=tuple(self._thoughts) or None,
        )
        created = int(datetime.now(UTC).timestamp())
        self._conversation.answer = ChatResponse(
            id=self._conversation.response_id,
            model="",
            created=created,
            choices=(choice,),
            usage=self._usage,
        )
        await self._keep()
        return []
