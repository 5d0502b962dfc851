"""Two Aperture source trees side by side in one run: CPU time per request, the measure a
busy machine disturbs least.

    git worktree add /tmp/base HEAD~1      # or: git archive HEAD~1 src | tar -x -C /tmp/base
    .venv/bin/python bench/ab_probe.py /tmp/base/src src --rounds 4

Both trees run on this checkout's interpreter and libraries (``PYTHONPATH`` puts each tree's
``aperture`` first), against one nginx upstream, with the probe's configuration. Each round
loads each tree in turn (alternating which goes first) with small text requests in a closed
loop (``wrk -t1 -c8``, instant upstream), then reads the process's CPU time (user + system,
every thread) from ``/proc`` and divides by the requests served. The summary is the median
and the minimum over rounds and the ratio new/base, so a neighbour's load that drifts over
the run falls on both alike (a neighbour only ever adds, so the minimum is the steadier).
Throughput is printed too, but on a shared machine only the CPU figure compares.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_probe as probe  # (the probe's upstream, config and wrk wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the src/ directory of the tree to compare to")
    parser.add_argument("new", type=Path, help="the src/ directory of the tree under test")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6, help="per measurement")
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    probe.WORK.mkdir(parents=True, exist_ok=True)
    bodies = probe.write_bodies()
    small = probe.WORK / "aperture-small.json"
    small.write_text(bodies[("aperture", "slow")].read_text().replace("bench-slow", "bench-text"))
    (probe.WORK / "nginx.conf").write_text(probe.nginx_conf())
    nginx = ["nginx", "-c", str(probe.WORK / "nginx.conf"), "-p", str(probe.WORK / "nginx")]
    trees = {"base": args.base.resolve(), "new": args.new.resolve()}
    ports = {name: (first + probe.PORT_OFFSET, first + probe.PORT_OFFSET + 1)
             for name, first in (("base", 18410), ("new", 18420))}
    probe.require_free(*(port for pair in ports.values() for port in pair))
    with contextlib.ExitStack() as stack:
        stack.enter_context(probe.process(nginx, "nginx.log"))
        gateways = {}
        for name, tree in trees.items():
            port, admin = ports[name]
            config = probe.aperture_config().replace(
                f'"port": {probe.APERTURE_PORT}', f'"port": {port}'
            )
            config = config.replace(f'"admin_port": {probe.ADMIN_PORT}', f'"admin_port": {admin}')
            folder = probe.WORK / name
            folder.mkdir(exist_ok=True)
            # Each its own database and spool: two gateways must not share one.
            storage = {"database": f"sqlite:///{folder}/aperture.db", "spool_dir": str(folder)}
            config = config.replace('"server":', f'"storage": {json.dumps(storage)}, "server":', 1)
            for leftover in folder.glob("aperture.db*"):
                leftover.unlink()
            (folder / "aperture.yaml").write_text(config)
            os.environ["PYTHONPATH"] = str(tree)
            argv = [sys.executable, "-m", "aperture", "serve", "--config"]
            argv += [str(folder / "aperture.yaml"), "--log-level", "warning"]
            gw = stack.enter_context(probe.process(argv, f"{name}.log"))
            probe.wait_ready(f"http://{probe.HOST}:{port}/healthz", gw)
            gateways[name] = (gw, port)
        os.environ.pop("PYTHONPATH", None)
        for _gw, port in gateways.values():  # warm-up: imports, pools, first audits
            probe.wrk(port, "post.lua", [str(small)], args.conns, 2)
        cpu: dict[str, list[float]] = {"base": [], "new": []}
        rps: dict[str, list[float]] = {"base": [], "new": []}
        for n in range(args.rounds):
            order = ("base", "new") if n % 2 == 0 else ("new", "base")
            for name in order:
                gw, port = gateways[name]
                time.sleep(0.5)  # the audit writer's last batch of the previous load
                before = probe.cpu_seconds(gw.pid)
                got = probe.wrk(port, "post.lua", [str(small)], args.conns, args.seconds)
                time.sleep(0.6)  # this load's last audit batch counts against it
                spent = probe.cpu_seconds(gw.pid) - before
                cpu[name].append(1000 * spent / got["requests"])
                rps[name].append(got["requests"] / args.seconds)
            print(
                f"round {n + 1}: CPU/request base {cpu['base'][-1]:.3f} ms, new "
                f"{cpu['new'][-1]:.3f} ms; req/s base {rps['base'][-1]:.0f}, new "
                f"{rps['new'][-1]:.0f}",
                flush=True,
            )
    for label, pick in (("median", statistics.median), ("min", min)):
        b, w = pick(cpu["base"]), pick(cpu["new"])
        print(f"{label} CPU/request: base {b:.3f} ms, new {w:.3f} ms, new/base {w / b:.3f}")
    print(
        f"median req/s: base {statistics.median(rps['base']):.0f}, new "
        f"{statistics.median(rps['new']):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
