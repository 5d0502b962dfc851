import hashlib
import os

import anyio

from aperture.model import InlineImage
from aperture.pipeline.context import RequestContext


def _info(size: int) -> InlineImage:
    return InlineImage(
        mime="image/png", width=1, height=1, size_bytes=size, frames=1, payload_offset=0
    )


def test_every_image_is_hashed_once_whatever_its_size() -> None:
    ctx = RequestContext(request_id="r", endpoint="/v1/chat/completions")
    datas = {(0, 1): os.urandom(10), (0, 2): os.urandom(400_000), (1, 0): os.urandom(300_000)}
    for at, data in datas.items():
        ctx.decoded[at] = data
        ctx.images[at] = _info(len(data))
    ctx.image_hashes[0, 2] = "already"  # hashed before (a normalisation's cache key)

    digests = anyio.run(ctx.image_digests)

    assert list(digests) == list(datas)
    assert digests[0, 1] == hashlib.sha256(datas[0, 1]).hexdigest()
    assert digests[0, 2] == "already"
    assert digests[1, 0] == hashlib.sha256(datas[1, 0]).hexdigest()
    assert anyio.run(ctx.image_digests) == digests
