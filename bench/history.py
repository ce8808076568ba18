"""Costs that depend on a conversation's history: idle poll bytes (target 3) and paging (target 5).

Both share one emulator process seeded with conversations of 100, 10,000 and 100,000 messages
(ending an hour ago, 20 s apart, so nothing is new for a sensor starting now).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import tracemalloc
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_cpu_seconds
from bench.proxy import CountingProxy


def _doto_sensor(cid: int, start: int) -> Any:
    from airflow_provider_doto.sensors.doto import NewMessageSensor

    return NewMessageSensor(
        task_id=f"doto_{cid}", conversation_id=cid, start=start, doto_conn_id="doto_proxy"
    )


def _http_sensor(cid: int, start: int, token: str, with_after: bool) -> Any:
    from airflow.providers.http.sensors.http import HttpSensor

    def new_message(response: Any) -> bool:
        return any(
            m.get("message_type") == "incoming" and m.get("created_at", 0) >= start
            for m in response.json()["payload"]
        )

    return HttpSensor(
        task_id=f"http_{cid}_{with_after}",
        http_conn_id="doto_http_proxy",
        method="GET",
        endpoint=f"api/v1/accounts/1/conversations/{cid}/messages",
        request_params={"after": start - 1} if with_after else None,
        headers={"api_access_token": token},
        response_check=new_message,
    )


def poll_cost(
    emu: EmulatorProcess, convs: dict[int, int], pokes: int, big_pokes: int
) -> dict[str, dict[str, Any]]:
    """Bytes on the wire and requests per poke, after one warm-up poke, through a counting proxy."""
    start = int(time.time())
    results: dict[str, dict[str, Any]] = {}
    with CountingProxy(*emu.host_port) as proxy:
        os.environ["AIRFLOW_CONN_DOTO_PROXY"] = emu.connection_json(proxy.base_url)
        os.environ["AIRFLOW_CONN_DOTO_HTTP_PROXY"] = emu.http_connection_json(proxy.base_url)
        for size, cid in convs.items():
            sensors = {
                "doto": _doto_sensor(cid, start),
                "http": _http_sensor(cid, start, emu.token, with_after=False),
                "http_after": _http_sensor(cid, start, emu.token, with_after=True),
            }
            for name, sensor in sensors.items():
                n = big_pokes if (name == "http" and size >= 100_000) else pokes
                context: dict[str, Any] = {}
                assert sensor.poke(context) is False  # warm-up: the first poke opens the connection
                per_poke: list[tuple[int, int, int]] = []
                c0, e0 = proc_cpu_seconds(), emu.cpu_seconds()
                for _ in range(n):
                    proxy.reset()
                    r0 = emu.call("request_count")
                    assert sensor.poke(context) is False
                    sent, received, _ = proxy.reset()
                    per_poke.append((sent, received, emu.call("request_count") - r0))
                c1, e1 = proc_cpu_seconds(), emu.cpu_seconds()
                results[f"{name}:{size}"] = {
                    "bytes": median([s + r for s, r, _ in per_poke]),
                    "request_bytes": median([s for s, _, _ in per_poke]),
                    "response_bytes": median([r for _, r, _ in per_poke]),
                    "requests": median([q for _, _, q in per_poke]),
                    # clock ticks are 10 ms: averaged over all pokes, not a median of each; the
                    # client's figure includes the counting proxy's threads
                    "client_cpu_ms": (c1 - c0) * 1000 / n,
                    "emulator_cpu_ms": (e1 - e0) * 1000 / n,
                    "pokes": n,
                }
    return results


def paging(emu: EmulatorProcess, cid: int, size: int, reps: int) -> dict[str, dict[str, Any]]:
    """Time and peak Python memory to list the whole conversation, with a 100-message page cap vs none."""
    from airflow_provider_doto.hooks.doto import DotoHook

    results: dict[str, dict[str, Any]] = {}
    for label, cap in (("nocap", None), ("cap100", 100)):
        emu.call("page_cap", cap)
        hook = DotoHook()
        times: list[float] = []
        emu_share: list[float] = []
        requests_per_list = 0
        for _ in range(reps):
            gc.collect()
            r0, e0, t0 = emu.call("request_count"), emu.cpu_seconds(), time.perf_counter()
            messages = hook.list_messages(cid)
            t1, e1 = time.perf_counter(), emu.cpu_seconds()
            requests_per_list = emu.call("request_count") - r0
            assert len(messages) == size, (label, len(messages))
            times.append(t1 - t0)
            emu_share.append((e1 - e0) / (t1 - t0))
            del messages
        gc.collect()
        tracemalloc.start()
        messages = hook.list_messages(cid)
        kept, peak = tracemalloc.get_traced_memory()  # kept: the returned list itself
        tracemalloc.stop()
        assert len(messages) == size
        del messages
        hook.close()
        results[label] = {
            "seconds": median(times),
            "seconds_all": [round(t, 3) for t in times],
            "peak_mb": peak / 1024 / 1024,
            "result_mb": kept / 1024 / 1024,
            "requests": requests_per_list,
            "emulator_cpu_share": median(emu_share),
        }
    emu.call("page_cap", None)
    return results


def measure(sizes: list[int], pokes: int = 10, big_pokes: int = 3, paging_reps: int = 3) -> dict[str, Any]:
    with EmulatorProcess() as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json()
        t0 = time.perf_counter()
        convs = {size: emu.call("seed", size, 3600) for size in sizes}
        seeded = time.perf_counter() - t0
        result: dict[str, Any] = {"seed_seconds": seeded, "poll": poll_cost(emu, convs, pokes, big_pokes)}
        biggest = max(sizes)
        result["paging"] = {"size": biggest, **paging(emu, convs[biggest], biggest, paging_reps)}
    return result


def main() -> None:
    sizes = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [100, 10_000, 100_000]
    print(json.dumps(measure(sizes)))


if __name__ == "__main__":
    main()
