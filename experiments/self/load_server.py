"""The server behind bench_load.py: aiohttp's low-level server (no router, no middleware), so the
generators, not the server, are what is measured as far as one core allows. 127.0.0.1 only.

    python load_server.py PORT

GET /fast         answers "ok" at once
GET /delay?ms=N   answers after N milliseconds (asyncio.sleep: other requests go on meanwhile)
GET /stall?s=S    blocks the whole event loop for S seconds, then answers: every request in
                  flight or arriving meanwhile waits (a stop-the-world pause, like a long GC)
GET /held         the median time /delay requests were really held, in ms, and forgets them:
                  asyncio.sleep(0.020) holds 21-23 ms on a busy machine, the truth to compare with
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiohttp import web

HELD_MS: list[float] = []


async def handle(request: web.BaseRequest) -> web.Response:
    if request.path == "/delay":
        start = time.perf_counter()
        await asyncio.sleep(float(request.query.get("ms", "20")) / 1000.0)
        HELD_MS.append((time.perf_counter() - start) * 1000.0)
    elif request.path == "/held":
        held = sorted(HELD_MS)
        HELD_MS.clear()
        return web.Response(text=f"{held[len(held) // 2] if held else 0.0:.4f}")
    elif request.path == "/stall":
        time.sleep(float(request.query.get("s", "1")))  # blocking on purpose: the stall
    elif request.path != "/fast":
        return web.Response(status=404, text="unknown path")
    return web.Response(text="ok")


async def serve(port: int) -> None:
    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
