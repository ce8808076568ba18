"""Costs that depend on a conversation's history, per server flavor: idle polls (target 3), the first
poke's one-off cost, and listing a whole conversation (5).

Each flavor gets an emulator process of its own (``doto``: before/after are timestamps, no page cap;
``chatwoot``: before/after are message ids, Chatwoot's page caps 100/20/1000; and ``chatwoot`` again
with ids starting at 2,000,000,000, above every Unix timestamp of this century), seeded with
conversations of 100, 10,000 and 100,000 messages (ending an hour ago, 20 s apart, so nothing is new
for a sensor starting now). The provider's connection is left on ``flavor: auto`` everywhere, so
each conversation's first poke includes auto's detection; the HttpSensor baselines run on the doto
emulator only (on Chatwoot's finder a bare list is only the 20 newest messages).
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

BIG_IDS = 2_000_000_000
# (name in the results, emulator flavor, first message id, list the biggest conversation too)
RUNS: tuple[tuple[str, str, int, bool], ...] = (
    ("doto", "doto", 1, True),
    ("chatwoot", "chatwoot", 1, True),
    ("chatwoot_big_ids", "chatwoot", BIG_IDS, False),
)


def _doto_sensor(cid: int, start: int, conn_id: str = "doto_proxy") -> Any:
    from airflow_provider_doto.sensors.doto import NewMessageSensor

    return NewMessageSensor(
        task_id=f"{conn_id}_{cid}", conversation_id=cid, start=start, doto_conn_id=conn_id
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


def _one_poke(
    emu: EmulatorProcess, proxy: CountingProxy, sensor: Any, context: dict[str, Any]
) -> dict[str, int]:
    """Bytes both ways (the proxy) and requests (the emulator's log) of one poke that finds nothing."""
    proxy.reset()
    emu.call("clear_requests")
    assert sensor.poke(context) is False
    sent, received, _ = proxy.reset()
    return {
        "bytes": sent + received,
        "request_bytes": sent,
        "response_bytes": received,
        "requests": emu.call("request_count"),
    }


def poll_cost(
    emu: EmulatorProcess, convs: dict[int, int], pokes: int, big_pokes: int, baselines: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per conversation size: the first poke (auto: detection + first lookup; and the same with the
    flavor set, no probe) and the median idle poke after it, through a counting proxy.

    Each size gets a proxy of its own, so a new server address: auto's detection (once per server
    in a process) runs again for each. Returns (poll, warmup); ``poll`` is keyed ``client:size``.
    """
    start = int(time.time())
    poll: dict[str, dict[str, Any]] = {}
    warmup: dict[str, dict[str, Any]] = {}
    for size, cid in convs.items():
        with CountingProxy(*emu.host_port) as proxy:
            os.environ["AIRFLOW_CONN_DOTO_PROXY"] = emu.connection_json(proxy.base_url)
            os.environ["AIRFLOW_CONN_DOTO_PROXY_PINNED"] = emu.connection_json(
                proxy.base_url, flavor=emu.flavor
            )
            os.environ["AIRFLOW_CONN_DOTO_HTTP_PROXY"] = emu.http_connection_json(proxy.base_url)
            sensors = {"doto": _doto_sensor(cid, start)}
            if baselines:
                sensors["http"] = _http_sensor(cid, start, emu.token, with_after=False)
                sensors["http_after"] = _http_sensor(cid, start, emu.token, with_after=True)
            for name, sensor in sensors.items():
                n = big_pokes if (name == "http" and size >= 100_000) else pokes
                context: dict[str, Any] = {}
                # warm-up: the first poke opens the connection (and for doto, detects the flavor)
                first = _one_poke(emu, proxy, sensor, context)
                if name == "doto":
                    warmup[f"auto:{size}"] = first
                per_poke: list[dict[str, int]] = []
                c0, e0 = proc_cpu_seconds(), emu.cpu_seconds()
                for _ in range(n):
                    per_poke.append(_one_poke(emu, proxy, sensor, context))
                c1, e1 = proc_cpu_seconds(), emu.cpu_seconds()
                poll[f"{name}:{size}"] = {
                    **{k: median([p[k] for p in per_poke]) for k in per_poke[0]},
                    "bytes_all": sorted({p["bytes"] for p in per_poke}),
                    # clock ticks are 10 ms: averaged over all pokes, not a median of each; the
                    # client's figure includes the counting proxy's threads
                    "client_cpu_ms": (c1 - c0) * 1000 / n,
                    "emulator_cpu_ms": (e1 - e0) * 1000 / n,
                    "pokes": n,
                }
            # The same first poke on a connection that names the flavor: no probe.
            warmup[f"pinned:{size}"] = _one_poke(
                emu, proxy, _doto_sensor(cid, start, "doto_proxy_pinned"), {}
            )
    return poll, warmup


def listing(emu: EmulatorProcess, cid: int, size: int, reps: int, warm_cid: int) -> dict[str, Any]:
    """Time, requests and peak Python memory of ``DotoHook.list_messages()`` of a whole conversation.

    The connection is on auto; its detection is done before, on another conversation, off the clock.
    """
    from airflow_provider_doto.hooks.doto import DotoHook

    hook = DotoHook()
    hook.list_messages(warm_cid)
    times: list[float] = []
    emu_share: list[float] = []
    requests_per_list = 0
    for _ in range(reps):
        gc.collect()
        emu.call("clear_requests")
        e0, t0 = emu.cpu_seconds(), time.perf_counter()
        messages = hook.list_messages(cid)
        t1, e1 = time.perf_counter(), emu.cpu_seconds()
        requests_per_list = emu.call("request_count")
        assert len(messages) == size, (emu.flavor, len(messages))
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
    hook.session.close()
    return {
        "seconds": median(times),
        "seconds_all": [round(t, 3) for t in times],
        "peak_mb": peak / 1024 / 1024,
        "result_mb": kept / 1024 / 1024,
        "requests": requests_per_list,
        "emulator_cpu_share": median(emu_share),
    }


def paging(emu: EmulatorProcess, cid: int, size: int, reps: int, warm_cid: int) -> dict[str, dict[str, Any]]:
    """On the doto emulator: listing with a 100-message page cap vs none (Doto's reference)."""
    results: dict[str, dict[str, Any]] = {}
    for label, cap in (("nocap", None), ("cap100", 100)):
        emu.call("page_cap", cap)
        results[label] = listing(emu, cid, size, reps, warm_cid)
    emu.call("page_cap", None)
    return results


def measure_flavor(
    flavor: str, first_id: int, sizes: list[int], pokes: int, big_pokes: int, paging_reps: int, lists: bool
) -> dict[str, Any]:
    with EmulatorProcess(flavor=flavor, first_message_id=first_id) as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json()
        t0 = time.perf_counter()
        convs = {size: emu.call("seed", size, 3600) for size in sizes}
        result: dict[str, Any] = {
            "flavor": flavor,
            "first_message_id": first_id,
            "seed_seconds": time.perf_counter() - t0,
        }
        result["poll"], result["warmup"] = poll_cost(emu, convs, pokes, big_pokes, baselines=flavor == "doto")
        if lists:
            biggest, smallest = max(sizes), min(sizes)
            if flavor == "doto":
                result["paging"] = {
                    "size": biggest,
                    **paging(emu, convs[biggest], biggest, paging_reps, convs[smallest]),
                }
                result["listing"] = {"size": biggest, **result["paging"]["nocap"]}
            else:
                result["listing"] = {
                    "size": biggest,
                    **listing(emu, convs[biggest], biggest, paging_reps, convs[smallest]),
                }
    return result


def measure(sizes: list[int], pokes: int = 10, big_pokes: int = 3, paging_reps: int = 3) -> dict[str, Any]:
    flavors = {
        name: measure_flavor(flavor, first_id, sizes, pokes, big_pokes, paging_reps, lists)
        for name, flavor, first_id, lists in RUNS
    }
    doto = flavors["doto"]
    # The figures of the doto emulator under the keys they always had (targets 3 and 5).
    return {
        "seed_seconds": doto["seed_seconds"],
        "poll": doto["poll"],
        "paging": doto.pop("paging"),
        "flavors": flavors,
    }


def main() -> None:
    sizes = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [100, 10_000, 100_000]
    print(json.dumps(measure(sizes)))


if __name__ == "__main__":
    main()
