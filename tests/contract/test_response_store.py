"""The response store's contract: memory, SQLite and PostgreSQL keep Responses answers alike."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from aperture.storage import ResponseBlob, ResponseStore, StoredResponse, open_storage

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aperture.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ResponseStore]:
    async with await open_storage(database_url, None, migrate=True) as storage:
        yield storage.responses


def blob(data: bytes) -> ResponseBlob:
    return ResponseBlob(hashlib.sha256(data).hexdigest(), "image/png", data)


def stored(n: int, *images: ResponseBlob, hours: float = 1.0) -> StoredResponse:
    return StoredResponse(
        id=f"resp_{n}",
        owner="tenant-a",
        key_id="key1",
        model="gpt-4o",
        created_at=T0,
        expires_at=T0 + timedelta(hours=hours),
        conversation=b'[{"role":"user","content":"hi"}]',
        answer=b'{"id":"resp_%d"}' % n,
        images=tuple(b.sha256 for b in images),
    )


async def test_a_kept_response_reads_back_with_its_images(store: ResponseStore) -> None:
    png = blob(b"\x89PNG one")
    await store.put(stored(1, png), [png])
    found = await store.get("resp_1", now=T0)
    assert found is not None
    response, blobs = found
    assert response == stored(1, png)
    assert blobs == {png.sha256: png}
    found = await store.get("resp_1", now=T0, images=False)
    assert found is not None and found == (stored(1, png), {})


async def test_unknown_and_expired_responses_are_not_found(store: ResponseStore) -> None:
    await store.put(stored(1, hours=1), [])
    assert await store.get("resp_2", now=T0) is None
    assert await store.get("resp_1", now=T0 + timedelta(hours=1)) is None
    assert await store.get("resp_1", now=T0 + timedelta(minutes=59)) is not None


async def test_a_retried_put_keeps_the_first(store: ResponseStore) -> None:
    await store.put(stored(1), [])
    await store.put(msgspec.structs.replace(stored(1), answer=b'{"other":1}'), [])
    found = await store.get("resp_1", now=T0)
    assert found is not None and found[0].answer == b'{"id":"resp_1"}'


async def test_a_put_naming_an_unkept_image_is_refused(store: ResponseStore) -> None:
    png = blob(b"never given")
    with pytest.raises(ValueError, match="no blob"):
        await store.put(stored(1, png), [])
    assert await store.get("resp_1", now=T0) is None


async def test_a_blob_is_shared_and_lives_while_a_response_names_it(
    store: ResponseStore,
) -> None:
    png, jpeg = blob(b"shared"), blob(b"only in two")
    await store.put(stored(1, png), [png])
    # The second write need not send the bytes again: the blob is kept by its hash.
    await store.put(stored(2, png, jpeg), [jpeg])
    assert await store.delete("resp_1") is True
    assert await store.delete("resp_1") is False
    found = await store.get("resp_2", now=T0)
    assert found is not None and found[1] == {png.sha256: png, jpeg.sha256: jpeg}
    await store.delete("resp_2")
    # With nothing naming them, the blobs are gone: a new response must send them again.
    with pytest.raises(ValueError, match="no blob"):
        await store.put(stored(3, png), [])


async def test_purge_forgets_expired_responses_and_their_unshared_blobs(
    store: ResponseStore,
) -> None:
    old, kept, shared = blob(b"old"), blob(b"kept"), blob(b"shared")
    await store.put(stored(1, old, shared, hours=1), [old, shared])
    await store.put(stored(2, kept, shared, hours=48), [kept])
    assert await store.purge(T0 + timedelta(hours=2)) == 1
    assert await store.purge(T0 + timedelta(hours=2)) == 0
    assert await store.get("resp_1", now=T0) is None
    found = await store.get("resp_2", now=T0)
    assert found is not None and set(found[1]) == {kept.sha256, shared.sha256}
    with pytest.raises(ValueError, match="no blob"):
        await store.put(stored(3, old), [])
    await store.put(stored(4, shared), [])
