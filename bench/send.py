"""Send throughput: messages per second through DotoHook.send_message vs a raw requests.Session vs HttpHook.run.

All three post the same JSON to the same emulator (another process), one message at a time, and
read the created message back. Rounds alternate the clients' order; figures are medians of rounds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_cpu_seconds

BODY: dict[str, Any] = {
    "content": "Your order #48213 has shipped.",
    "message_type": "outgoing",
    "private": False,
    "content_type": "text",
}


def _clients(emu: EmulatorProcess, cids: dict[str, int]) -> dict[str, Callable[[], Any]]:
    import requests
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

    return {"doto": doto, "raw": raw, "http": http}


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


def measure(messages: int = 200, rounds: int = 5) -> dict[str, Any]:
    with EmulatorProcess() as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json()
        os.environ["AIRFLOW_CONN_DOTO_HTTP"] = emu.http_connection_json()
        cids = dict(zip(("doto", "raw", "http"), emu.call("add_conversations", 3), strict=True))
        clients = _clients(emu, cids)
        for send in clients.values():  # warm up: imports, connection lookup, keep-alive
            for _ in range(10):
                send()
        rates: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        emu_share: dict[str, list[float]] = {name: [] for name in clients}
        names = list(clients)
        for r in range(rounds):
            order = names[r % 3 :] + names[: r % 3]
            for name in order:
                send = clients[name]
                c0, e0, t0 = proc_cpu_seconds(), emu.cpu_seconds(), time.perf_counter()
                for _ in range(messages):
                    send()
                t1, c1, e1 = time.perf_counter(), proc_cpu_seconds(), emu.cpu_seconds()
                rates[name].append(messages / (t1 - t0))
                cpu[name].append((c1 - c0) * 1000 / messages)
                emu_share[name].append((e1 - e0) / (t1 - t0))
        stored = {name: emu.call("count_messages", cid) for name, cid in cids.items()}
        profiles = {name: _profile(send, 100) for name, send in clients.items()}
    expected = 10 + rounds * messages
    return {
        "messages_per_round": messages,
        "rounds": rounds,
        **{
            name: {
                "msgs_per_s": median(rates[name]),
                "msgs_per_s_all": [round(x) for x in rates[name]],
                "client_cpu_ms_per_msg": median(cpu[name]),
                "emulator_cpu_share": median(emu_share[name]),
                "stored_ok": stored[name] == expected,
                "profile": profiles[name],
            }
            for name in clients
        },
    }


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(json.dumps(measure(messages, rounds)))


if __name__ == "__main__":
    main()
