"""Image pass-through in CPU per MB: Aperture against the bare floor of its HTTP stack.

    .venv/bin/python bench/image_floor.py              # 1, 4, 16 MB, both servers
    .venv/bin/python bench/image_floor.py 4 16

The floor is a raw ASGI app on the same server (uvicorn, httptools) that reads the whole
body and POSTs it unchanged with the same client (one ``aiohttp`` session), nothing else: no
parsing, no checks, no audit; it tunes glibc's allocator as ``aperture serve`` does
(``runtime.tune_allocator``: without it, every multi-megabyte buffer is a fresh mmap and
page-faults again, which triples the floor). Both get the same chat request carrying one noise JPEG, one at
a time, from this script to an nginx upstream (``latency_probe``'s), and each process's CPU
(``/proc/<pid>/stat`` utime + stime, so a busy machine disturbs it less than latency) is
divided by the requests. What Aperture costs per MB beyond the floor is its own work; the
floor is what the HTTP stack costs however little the gateway does. "server only" answers
at once without calling out: the receiving half of the floor.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from pathlib import Path

import latency_probe as lp
from image_cost import body_for, noise_jpeg

TICK = os.sysconf("SC_CLK_TCK")
FLOOR_PORT = 18402 + lp.PORT_OFFSET


def bare_app(*, receive_only: bool) -> object:
    import aiohttp

    session: list[aiohttp.ClientSession] = []
    upstream = f"http://{lp.HOST}:{lp.UP_FAST}/v1/chat/completions"

    async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        status, data = 200, b"{}"
        if not receive_only:
            if not session:
                session.append(aiohttp.ClientSession())
            async with session[0].post(upstream, data=body,
                                       headers={"Content-Type": "application/json"}) as response:
                status, data = response.status, await response.read()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})

    return app


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def per_request(port: int, pid: int, body: bytes, runs: int) -> float:
    conn = http.client.HTTPConnection(lp.HOST, port)
    headers = {"Authorization": f"Bearer {lp.KEY}", "Content-Type": "application/json"}

    def one() -> None:
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status

    for _ in range(3):
        one()
    before = cpu(pid)
    for _ in range(runs):
        one()
    return 1000 * (cpu(pid) - before) / runs


def main() -> None:
    if sys.argv[1:2] == ["--serve-floor"]:
        import uvicorn

        from aperture.runtime import tune_allocator

        tune_allocator()  # the allocator tuning `aperture serve` applies: same heap behaviour
        receive_only = sys.argv[2] == "receive"
        uvicorn.run(bare_app(receive_only=receive_only), host=lp.HOST,  # type: ignore[arg-type]
                    port=FLOOR_PORT + receive_only, http="httptools", log_level="warning",
                    access_log=False)
        return
    sizes = [float(x) for x in sys.argv[1:]] or [1, 4, 16]
    lp.WORK.mkdir(parents=True, exist_ok=True)
    for leftover in lp.WORK.glob("aperture.db*"):
        leftover.unlink()
    (lp.WORK / "nginx.conf").write_text(
        lp.nginx_conf().replace("client_body_buffer_size 16m", "client_body_buffer_size 64m"))
    (lp.WORK / "aperture.yaml").write_text(lp.aperture_config())
    nginx = ["nginx", "-c", str(lp.WORK / "nginx.conf"), "-p", str(lp.WORK / "nginx")]
    serve = [str(lp.APERTURE_BIN), "serve", "--config", str(lp.WORK / "aperture.yaml"),
             "--log-level", "warning"]
    floor = [sys.executable, __file__, "--serve-floor", "proxy"]
    server = [sys.executable, __file__, "--serve-floor", "receive"]
    with lp.process(nginx, "nginx.log"), lp.process(serve, "aperture.log") as gw, \
            lp.process(floor, "floor.log") as bare, lp.process(server, "server.log") as recv:
        lp.wait_ready(f"http://{lp.HOST}:{lp.APERTURE_PORT}/healthz", gw)
        time.sleep(1.0)
        print(f"{'MB':>5} {'server only':>12} {'floor':>8} {'Aperture':>9}   ms CPU per request"
              " (per MB)")
        for mb in sizes:
            jpeg = noise_jpeg(int(mb * 1e6))
            body = body_for(jpeg).replace(b'"model":"m"', b'"model":"bench-text"')
            runs = max(10, int(80 / mb))
            # Alternated twice, so drift on a shared machine falls on both alike.
            got: dict[str, list[float]] = {"server": [], "floor": [], "aperture": []}
            for _ in range(2):
                got["server"].append(per_request(FLOOR_PORT + 1, recv.pid, body, runs))
                got["floor"].append(per_request(FLOOR_PORT, bare.pid, body, runs))
                got["aperture"].append(per_request(lp.APERTURE_PORT, gw.pid, body, runs))
            size = len(jpeg) / 1e6
            cells = [f"{min(v):6.2f} ({min(v) / size:4.2f})" for v in got.values()]
            print(f"{size:5.1f} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
