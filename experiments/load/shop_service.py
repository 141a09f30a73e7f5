"""A small shop service for the example load scenario (checkout.toml): fast catalogue reads, and a
checkout that keeps SHOP_LEAK_KB (default 100) of every order in a module-level list, the kind of
leak a per-request cache without eviction causes. `SHOP_LEAK_KB=0` is the fixed service.

    python experiments/load/shop_service.py --port 8089
"""

from __future__ import annotations

import argparse
import asyncio
import os

from aiohttp import web

ORDERS: list[bytes] = []


async def items(_request: web.Request) -> web.Response:
    return web.json_response({"items": list(range(20))})


async def checkout(request: web.Request) -> web.Response:
    body = await request.read()
    await asyncio.sleep(0.005)  # the payment provider
    ORDERS.append(bytes(int(os.environ.get("SHOP_LEAK_KB", "100")) * 1024) + body)
    return web.json_response({"order": len(ORDERS)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/items", items)
    app.router.add_post("/checkout", checkout)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
