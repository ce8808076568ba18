"""Per-poll CPU of candidate async transports: N pollers sharing one client in one event loop.

Each poller GETs an (empty) conversation's list endpoint every ``interval`` seconds, as a deferred
sensor does; the figure is this process's CPU time per request. This is what picked the transport
of :class:`~airflow_provider_doto.hooks.doto_async.DotoAsyncHook`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import proc_cpu_seconds

Get = Callable[[str, dict[str, str]], Awaitable[tuple[int, bytes]]]


async def _httpx() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1100, max_keepalive_connections=1100))

    async def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        r = await client.get(url, headers=headers)
        return r.status_code, r.content

    return get, client.aclose


async def _httpcore() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=1100, max_keepalive_connections=1100)

    async def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        r = await pool.request("GET", url, headers=list(headers.items()))
        return r.status, r.content

    return get, pool.aclose


async def _aiohttp() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        async with session.get(url, headers=headers, allow_redirects=False) as r:
            return r.status, await r.read()

    return get, session.close


TRANSPORTS = {"httpx": _httpx, "httpcore": _httpcore, "aiohttp": _aiohttp}


async def _poll_all(
    emu: EmulatorProcess,
    make: Callable[[], Awaitable[Any]],
    cids: list[int],
    interval: float,
    duration: float,
) -> dict[str, float]:
    get, close = await make()
    headers = {"api_access_token": emu.token, "Accept": "application/json"}
    after = int(time.time())
    count = 0
    errors = 0
    stop_at = time.monotonic() + duration

    async def poller(cid: int) -> None:
        nonlocal count, errors
        url = f"{emu.base_url}/api/v1/accounts/{emu.account_id}/conversations/{cid}/messages?after={after}"
        await asyncio.sleep(random.uniform(0, interval))
        while time.monotonic() < stop_at:
            status, body = await get(url, headers)
            json.loads(body)
            if status == 200:
                count += 1
            else:
                errors += 1
            await asyncio.sleep(interval)

    tasks = [asyncio.create_task(poller(c)) for c in cids]
    # Measure the second half only: connections are open and pools warm by then.
    await asyncio.sleep(duration / 3)
    c0, e0, n0, t0 = proc_cpu_seconds(), emu.cpu_seconds(), count, time.monotonic()
    await asyncio.gather(*tasks)
    c1, e1, n1, t1 = proc_cpu_seconds(), emu.cpu_seconds(), count, time.monotonic()
    await close()
    polls = max(n1 - n0, 1)
    return {
        "cpu_ms_per_poll": (c1 - c0) * 1000 / polls,
        "cpu_share": (c1 - c0) / (t1 - t0),
        "emulator_cpu_share": (e1 - e0) / (t1 - t0),
        "polls_per_s": polls / (t1 - t0),
        "errors": errors,
    }


def measure(
    emu: EmulatorProcess, name: str, cids: list[int], interval: float, duration: float
) -> dict[str, float]:
    return asyncio.run(_poll_all(emu, TRANSPORTS[name], cids, interval, duration))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.transports")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args(argv)
    with EmulatorProcess() as emu:
        cids = emu.call("add_conversations", args.n)
        result = {name: measure(emu, name, cids, args.interval, args.duration) for name in TRANSPORTS}
    print(json.dumps({"pollers": args.n, "interval_s": args.interval, **result}))


if __name__ == "__main__":
    main()
