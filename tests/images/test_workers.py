"""Decoding in memory-limited worker processes: a hostile job fails alone, the pool goes on."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib

import anyio
import pytest
from PIL import Image

from aperture.images.limits import TargetImageLimits
from aperture.images.normalize import PixelJob, run_pixel_job
from aperture.images.workers import DecodeFailed, DecodePool

LIMITS = TargetImageLimits(max_side=512)


def zero_png(width: int, height: int) -> bytes:
    """An RGB PNG of zeros, a few hundred KB that decode to width*height*4 bytes in Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    squeeze = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte, then the pixels
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def photo(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width // 8, height // 8), 60).convert("RGB").resize((width, height)).save(
        buffer, "JPEG", quality=85
    )
    return buffer.getvalue()


# Jobs run in a fresh interpreter: they must be importable, so they live at module level.
def spin() -> None:
    while True:
        pass


def crash() -> None:
    os.abort()


def echo(value: str) -> str:
    return value


def pid() -> int:
    return os.getpid()


def run(pool: DecodePool, *job: object) -> object:
    async def go() -> object:
        return await pool.run(*job)  # type: ignore[arg-type]

    return anyio.run(go)


@pytest.fixture
def pool() -> object:
    decoder = DecodePool(workers=2, memory_mb=200, cpu_s=2)
    yield decoder
    decoder.close()


def test_a_bomb_fails_on_memory_and_a_legitimate_large_image_still_passes(
    pool: DecodePool,
) -> None:
    bomb = PixelJob(zero_png(8000, 8000), "image/png", 1, LIMITS, 512)  # 256 MB decoded
    with pytest.raises(DecodeFailed) as caught:
        run(pool, run_pixel_job, bomb)
    assert caught.value.kind == "memory"
    assert "200 MB" in caught.value.detail
    # 24 MP: JPEG decodes at 1/8 scale (draft), well inside the same ceiling.
    large = PixelJob(photo(6000, 4000), "image/jpeg", 1, LIMITS, 512)
    result = run(pool, run_pixel_job, large)
    assert max(result.width, result.height) == 512  # type: ignore[attr-defined]
    # A PNG has no reduced decode, but 6 MP fits.
    png = PixelJob(zero_png(3000, 2000), "image/png", 1, LIMITS, 512)
    assert run(pool, run_pixel_job, png).width == 512  # type: ignore[attr-defined]


def test_a_job_that_spins_is_stopped_by_its_cpu_ceiling() -> None:
    decoder = DecodePool(workers=1, memory_mb=200, cpu_s=1)
    try:
        started = time.monotonic()
        with pytest.raises(DecodeFailed) as caught:
            run(decoder, spin)
        assert caught.value.kind == "cpu"
        assert time.monotonic() - started < 30  # 1 s of CPU, generous for a shared machine
        assert run(decoder, echo, "after") == "after"
    finally:
        decoder.close()


def test_a_crashing_decoder_takes_only_its_own_job(pool: DecodePool) -> None:
    async def both() -> tuple[object, object]:
        results: dict[str, object] = {}

        async def one(name: str, *job: object) -> None:
            try:
                results[name] = await pool.run(*job)  # type: ignore[arg-type]
            except DecodeFailed as exc:
                results[name] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(one, "crash", crash)
            group.start_soon(
                one, "fine", run_pixel_job, PixelJob(photo(800, 600), "image/jpeg", 1, LIMITS, 512)
            )
        return results["crash"], results["fine"]

    crashed, fine = anyio.run(both)
    assert isinstance(crashed, DecodeFailed)
    assert crashed.kind == "crashed"
    assert fine.width == 512  # type: ignore[attr-defined]


def test_an_error_in_the_decoder_is_reported_not_raised_as_is(pool: DecodePool) -> None:
    cut = PixelJob(photo(800, 600)[:3000], "image/jpeg", 1, LIMITS, 512)
    with pytest.raises(DecodeFailed) as caught:
        run(pool, run_pixel_job, cut)
    assert caught.value.kind == "error"


def test_workers_are_reused_and_a_cancelled_job_stops_its_worker(pool: DecodePool) -> None:
    first, second = run(pool, pid), run(pool, pid)
    assert first == second

    async def cancel_a_spin() -> float:
        started = time.monotonic()
        with anyio.move_on_after(0.5):
            await pool.run(spin)
        return time.monotonic() - started

    assert anyio.run(cancel_a_spin) < 5
    assert run(pool, echo, "next") == "next"


def test_a_closed_pool_leaves_no_worker_behind() -> None:
    decoder = DecodePool(workers=1, memory_mb=200, cpu_s=2)
    worker = run(decoder, pid)
    decoder.close()
    assert isinstance(worker, int)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
