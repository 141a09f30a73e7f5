"""The server behind bench_load.py: aiohttp's low-level server (no router, no middleware), so the
generators, not the server, are what is measured as far as one core allows. 127.0.0.1 only.

    python load_server.py PORT

GET /fast         answers "ok" at once
GET /delay?ms=N   answers after N milliseconds (asyncio.sleep: other requests go on meanwhile)
GET /stall?s=S    blocks the whole event loop for S seconds, then answers: every request in
                  flight or arriving meanwhile waits (a stop-the-world pause, like a long GC)
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiohttp import web


async def handle(request: web.BaseRequest) -> web.Response:
    if request.path == "/delay":
        await asyncio.sleep(float(request.query.get("ms", "20")) / 1000.0)
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
