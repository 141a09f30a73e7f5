"""A real aiohttp server on 127.0.0.1 (ephemeral port, own thread and event loop) that counts what it receives.

Endpoints: /fast; /slow (asyncio.sleep SLOW_S); /fail (every 4th request answers 500); /sleep (sleeps
2 s, past the tests' timeouts); /stall (the STALL_AT-th request blocks the whole server for STALL_S);
/limited (the LIMIT_AT-th request answers 429 with Retry-After: 1); /echo (keeps the X-Test header
and the JSON body it got, answers 201).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

SLOW_S = 0.020
STALL_AT = 100
STALL_S = 1.0
LIMIT_AT = 5


@dataclass
class ServerLog:
    """What the server saw: requests per path, statuses it answered, arrival times (time.monotonic())."""

    received: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    limited_at: float | None = None  # when /limited answered 429
    echoed: list[tuple[str, object]] = field(default_factory=list)  # /echo: (X-Test header, JSON body)

    def arrive(self, path: str) -> int:
        self.received[path] += 1
        self.arrivals.setdefault(path, []).append(time.monotonic())
        return self.received[path]

    def answer(self, path: str, status: int, text: str = "ok", headers: dict[str, str] | None = None) -> web.Response:
        self.statuses[path, status] += 1
        return web.Response(status=status, text=text, headers=headers)


def _app(log: ServerLog) -> web.Application:
    async def fast(request: web.Request) -> web.Response:
        log.arrive("/fast")
        return log.answer("/fast", 200)

    async def slow(request: web.Request) -> web.Response:
        log.arrive("/slow")
        await asyncio.sleep(SLOW_S)
        return log.answer("/slow", 200)

    async def fail(request: web.Request) -> web.Response:
        number = log.arrive("/fail")
        return log.answer("/fail", 500 if number % 4 == 0 else 200)

    async def sleep(request: web.Request) -> web.Response:
        log.arrive("/sleep")
        await asyncio.sleep(2.0)
        return log.answer("/sleep", 200)

    async def stall(request: web.Request) -> web.Response:
        if log.arrive("/stall") == STALL_AT:
            time.sleep(STALL_S)  # blocks the server's loop: every request meanwhile waits
        return log.answer("/stall", 200)

    async def limited(request: web.Request) -> web.Response:
        if log.arrive("/limited") == LIMIT_AT:
            log.limited_at = time.monotonic()
            return log.answer("/limited", 429, "slow down", {"Retry-After": "1"})
        return log.answer("/limited", 200)

    async def echo(request: web.Request) -> web.Response:
        log.arrive("/echo")
        log.echoed.append((request.headers.get("X-Test", ""), await request.json()))
        return log.answer("/echo", 201)

    app = web.Application()
    for path, handler in (("/fast", fast), ("/slow", slow), ("/fail", fail), ("/sleep", sleep), ("/stall", stall),
                          ("/limited", limited), ("/echo", echo)):
        app.router.add_route("*", path, handler)
    return app


@contextmanager
def load_server() -> Iterator[tuple[str, ServerLog]]:
    """(base_url, log) of a server running for the block."""
    log = ServerLog()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(log), shutdown_timeout=0.1)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True, name="load-test-server")
    thread.start()
    assert started.wait(10), "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port[0]}", log
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
