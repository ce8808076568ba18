"""Send throughput: messages per second through DotoHook.send_message vs a raw requests.Session vs HttpHook.run.

All post the same JSON to the same emulator (another process), one message at a time, and read the
created message back. Clients take turns in short blocks (order rotating), so load from anything
else on the machine falls on all of them alike; figures are medians over blocks. ``urllib3`` (a
bare keep-alive pool, no requests on top) is shown for reference: what a leaner sync transport
could reach.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_cpu_seconds

CLIENTS = ("doto", "raw", "http", "urllib3", "raw_noenv")
BODY: dict[str, Any] = {
    "content": "Your order #48213 has shipped.",
    "message_type": "outgoing",
    "private": False,
    "content_type": "text",
}


def _clients(emu: EmulatorProcess, cids: dict[str, int]) -> dict[str, Callable[[], Any]]:
    import requests
    import urllib3
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_doto.hooks.doto import DotoHook

    hook = DotoHook()
    session = requests.Session()
    session.headers.update({"api_access_token": emu.token, "Accept": "application/json"})
    raw_url = f"{emu.base_url}/api/v1/accounts/{emu.account_id}/conversations/{cids['raw']}/messages"
    http_endpoint = f"api/v1/accounts/{emu.account_id}/conversations/{cids['http']}/messages"
    http_hook = HttpHook(method="POST", http_conn_id="doto_http")
    headers = {"api_access_token": emu.token, "Accept": "application/json"}

    def doto() -> Any:
        return hook.send_message(cids["doto"], BODY["content"])

    def raw() -> Any:
        response = session.post(raw_url, json=BODY, timeout=30)
        response.raise_for_status()
        return response.json()

    def http() -> Any:
        return http_hook.run(http_endpoint, json=BODY, headers=headers).json()

    pool = urllib3.PoolManager()
    u3_url = f"{emu.base_url}/api/v1/accounts/{emu.account_id}/conversations/{cids['urllib3']}/messages"
    u3_headers = {**headers, "Content-Type": "application/json"}

    def u3() -> Any:
        response = pool.request("POST", u3_url, body=json.dumps(BODY).encode(), headers=u3_headers)
        if response.status != 200:
            raise RuntimeError(response.status)
        return json.loads(response.data)

    quiet = requests.Session()
    quiet.headers.update(session.headers)
    quiet.trust_env = False  # no proxy / CA-bundle / netrc lookups in the environment per request
    quiet_url = f"{emu.base_url}/api/v1/accounts/{emu.account_id}/conversations/{cids['raw_noenv']}/messages"

    def raw_noenv() -> Any:
        response = quiet.post(quiet_url, json=BODY, timeout=30)
        response.raise_for_status()
        return response.json()

    return {"doto": doto, "raw": raw, "http": http, "urllib3": u3, "raw_noenv": raw_noenv}


def _profile(send: Callable[[], Any], n: int) -> list[str]:
    """cProfile's top entries (own time) for ``n`` sends: where a client's time goes."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        send()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return [line.replace(sys.prefix, "<venv>") for line in lines[start : start + 9] if line.strip()]


def measure(block: int = 50, blocks: int = 30) -> dict[str, Any]:
    with EmulatorProcess() as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json()
        os.environ["AIRFLOW_CONN_DOTO_HTTP"] = emu.http_connection_json()
        cids = dict(zip(CLIENTS, emu.call("add_conversations", len(CLIENTS)), strict=True))
        clients = _clients(emu, cids)
        for send in clients.values():  # warm up: imports, connection lookup, keep-alive
            for _ in range(10):
                send()
        rates: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, float] = dict.fromkeys(clients, 0.0)
        emu_cpu: dict[str, float] = dict.fromkeys(clients, 0.0)
        wall: dict[str, float] = dict.fromkeys(clients, 0.0)
        names = list(clients)
        for b in range(blocks):
            shift = b % len(names)
            for name in names[shift:] + names[:shift]:
                send = clients[name]
                c0, e0, t0 = proc_cpu_seconds(), emu.cpu_seconds(), time.perf_counter()
                for _ in range(block):
                    send()
                t1, c1, e1 = time.perf_counter(), proc_cpu_seconds(), emu.cpu_seconds()
                rates[name].append(block / (t1 - t0))
                cpu[name] += c1 - c0
                emu_cpu[name] += e1 - e0
                wall[name] += t1 - t0
        stored = {name: emu.call("count_messages", cid) for name, cid in cids.items()}
        profiles = {name: _profile(send, 100) for name, send in clients.items()}
    expected = 10 + blocks * block
    sent = blocks * block

    def paired(a: str, b: str) -> float:
        # Each round runs every client back to back: the ratio within a round compares like with like.
        return median([x / y for x, y in zip(rates[a], rates[b], strict=True)])

    return {
        "block": block,
        "blocks": blocks,
        "ratio_doto_raw": paired("doto", "raw"),
        "ratio_doto_http": paired("doto", "http"),
        "ratio_urllib3_raw": paired("urllib3", "raw"),
        "ratio_raw_http": paired("raw", "http"),
        "ratio_urllib3_http": paired("urllib3", "http"),
        "ratio_noenv_raw": paired("raw_noenv", "raw"),
        **{
            name: {
                "msgs_per_s": median(rates[name]),
                "msgs_per_s_quartiles": [round(q) for q in statistics.quantiles(rates[name], n=4)],
                "client_cpu_ms_per_msg": cpu[name] * 1000 / sent,
                "wall_ms_per_msg": wall[name] * 1000 / sent,
                "emulator_cpu_share": emu_cpu[name] / wall[name],
                "stored_ok": stored[name] == expected,
                "profile": profiles[name],
            }
            for name in clients
        },
    }


def main() -> None:
    block = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    print(json.dumps(measure(block, blocks)))


if __name__ == "__main__":
    main()
