"""An aiohttp server whose memory per request in flight is known, for the scaling tests.

    python scaling_server.py PORT [HOLD_MB] [DELAY_S]

GET /hold maps HOLD_MB (2) MiB of anonymous memory, writes every page, waits DELAY_S (0.5 s),
unmaps it and answers "ok". With N closed-model users and no think time about N requests are
in flight at any moment, so the server holds about N * HOLD_MB MiB more than when idle. An mmap
is given back to the kernel when it is closed (malloc's heap would keep freed memory), so RSS
follows what is in flight. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import mmap
import sys

from aiohttp import web

MIB = 1024 * 1024


def main() -> None:
    port = int(sys.argv[1])
    hold_bytes = int(float(sys.argv[2]) * MIB) if len(sys.argv) > 2 else 2 * MIB
    delay_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    page = b"\x01" * mmap.PAGESIZE

    async def hold(request: web.Request) -> web.Response:
        held = mmap.mmap(-1, hold_bytes)
        for offset in range(0, hold_bytes, mmap.PAGESIZE):
            held[offset:offset + mmap.PAGESIZE] = page
        try:
            await asyncio.sleep(delay_s)
        finally:
            held.close()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hold", hold)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
