"""Sends over TLS with 20 ms round-trip latency (benchmark 7).

The emulator (its own process) serves https with a self-signed certificate for 127.0.0.1 made at
run time; the clients trust it through ``REQUESTS_CA_BUNDLE`` (how both Doto hooks are told, see
docs/connection.md) and, for HttpHook, its connection's ``verify`` extra. Between them a delay proxy
(another process) holds every chunk ``delay`` seconds in each direction. The TCP handshake with
the proxy itself is local, so the proxy stands in for it by holding a new connection's first
client bytes one more round trip. It counts connections and TLS handshakes (ClientHello records
opening a connection).

Clients, each sending one message to each of its own fresh conversations, taking turns in rounds:
``batch`` (``DotoAsyncHook.send_messages``, 10 in flight), ``doto`` (sequential
``DotoHook.send_message``), ``http`` (sequential ``HttpHook(method="POST").run``, a new hook per
call as each HttpOperator task makes) and ``http_reused`` (one HttpHook for every call).

``python -m bench.tls_link --n 1000 [--http-n 1000] [--rounds 5]``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airflow_provider_doto.testing.emulator.tls import self_signed_certificate
from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_cpu_seconds

CONTENT = "Your order #48213 has shipped."


# ---- the delay proxy (a child process) ------------------------------------------------------------


def _proxy_child(conn: Any, upstream: tuple[str, int], delay: float) -> None:
    stats = {"connections": 0, "handshakes": 0, "sent": 0, "received": 0}
    lock = threading.Lock()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str, first_extra: float
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    pause = due - loop.time()
                    if pause > 0:
                        await asyncio.sleep(pause)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        task = asyncio.create_task(deliver())
        extra = first_extra
        try:
            while True:
                data = await reader.read(1 << 16)
                if data:
                    with lock:
                        stats[key] += len(data)
                        if extra and data[:1] == b"\x16" and data[5:6] == b"\x01":  # a ClientHello first
                            stats["handshakes"] += 1
                await queue.put((loop.time() + delay + extra, data))
                extra = 0.0
                if not data:
                    break
        except OSError:
            await queue.put((loop.time(), b""))
        await task

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        with lock:
            stats["connections"] += 1
        server_r, server_w = await asyncio.open_connection(*upstream)
        await asyncio.gather(
            pump(client_r, server_w, "sent", 2 * delay),  # the TCP handshake's round trip
            pump(server_r, client_w, "received", 0.0),
        )

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(("ready", os.getpid(), server.sockets[0].getsockname()[1]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def commands() -> None:
            while True:
                try:
                    cmd = conn.recv()
                except EOFError:
                    cmd = "stop"
                if cmd == "stop":
                    loop.call_soon_threadsafe(stop.set)
                    return
                with lock:
                    conn.send(dict(stats))
                    if cmd == "reset":
                        stats.update(dict.fromkeys(stats, 0))

        threading.Thread(target=commands, daemon=True).start()
        await stop.wait()
        server.close()

    asyncio.run(main())


class DelayProxy:
    """``with DelayProxy(host, port, delay) as proxy:`` a loopback proxy adding ``delay`` s each way."""

    def __init__(self, host: str, port: int, delay: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_proxy_child, args=(child, (host, port), delay), daemon=True)
        self.pid = self.port = 0

    def __enter__(self) -> DelayProxy:
        self._proc.start()
        _, self.pid, self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()

    def reset(self) -> dict[str, int]:
        """The counts so far, then zero them."""
        self._conn.send("reset")
        return dict(self._conn.recv())


# ---- clients ------------------------------------------------------------------------------------


def _senders(emu: EmulatorProcess) -> dict[str, Any]:
    """Each client as ``send(conversation_ids)``, sending one message to each conversation."""
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_doto import api
    from airflow_provider_doto.hooks.doto import DotoHook
    from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

    hook = DotoHook("doto_tls")
    headers = {"api_access_token": emu.token, "Accept": "application/json"}
    body = {"content": CONTENT, "message_type": "outgoing", "private": False, "content_type": "text"}
    loop = asyncio.new_event_loop()
    async_hook = DotoAsyncHook("doto_tls")

    def batch(cids: list[int]) -> None:
        items = [api.BatchItem(cid, CONTENT) for cid in cids]
        results = loop.run_until_complete(async_hook.send_messages(items, max_in_flight=10))
        failed = [r for r in results if r.status != "sent"]
        if failed:
            raise RuntimeError(f"{len(failed)} batch sends failed: {failed[:3]}")

    def doto(cids: list[int]) -> None:
        for cid in cids:
            hook.send_message(cid, CONTENT)

    def http(cids: list[int]) -> None:
        # A new hook per call, as every HttpOperator task (or mapped instance) makes: its keep-alive
        # adapter, so its connection pool, lives with the hook, so each call opens a connection.
        for cid in cids:
            endpoint = f"api/v1/accounts/{emu.account_id}/conversations/{cid}/messages"
            HttpHook(method="POST", http_conn_id="doto_tls_http").run(
                endpoint, json=body, headers=headers
            ).json()

    reused = HttpHook(method="POST", http_conn_id="doto_tls_http")

    def http_reused(cids: list[int]) -> None:
        # One hook for every call: its adapter keeps the connection alive between calls.
        for cid in cids:
            endpoint = f"api/v1/accounts/{emu.account_id}/conversations/{cid}/messages"
            reused.run(endpoint, json=body, headers=headers).json()

    def close() -> None:
        tasks = asyncio.all_tasks(loop)  # the async hook's session closes with its loop's tasks
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    return {"batch": batch, "doto": doto, "http": http, "http_reused": http_reused, "_close": close}


def measure(n: int, http_n: int, rounds: int, delay: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    certfile, keyfile = (str(p) for p in self_signed_certificate(folder))
    with EmulatorProcess(tls=(certfile, keyfile)) as emu:
        tls_port = int(emu.tls_url.rsplit(":", 1)[1])
        with DelayProxy("127.0.0.1", tls_port, delay) as proxy:
            url = f"https://127.0.0.1:{proxy.port}"
            os.environ["REQUESTS_CA_BUNDLE"] = certfile
            os.environ["AIRFLOW_CONN_DOTO_TLS"] = emu.connection_json(url)
            os.environ["AIRFLOW_CONN_DOTO_TLS_HTTP"] = json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": proxy.port,
                    "schema": "https",
                    "extra": {"verify": certfile},
                }
            )
            sizes = {"batch": n, "doto": n, "http": http_n, "http_reused": n}
            cids = {name: emu.call("add_conversations", size) for name, size in sizes.items()}
            names = list(sizes)
            warm = emu.call("add_conversations", len(names) * 5)
            senders = _senders(emu)
            for i, name in enumerate(names):  # imports, connection lookup, first handshake
                senders[name](warm[i * 5 : i * 5 + 5])
            proxy.reset()
            seconds = dict.fromkeys(names, 0.0)
            cpu = dict.fromkeys(names, 0.0)
            emu_cpu = dict.fromkeys(names, 0.0)
            proxy_cpu = dict.fromkeys(names, 0.0)
            counts: dict[str, dict[str, int]] = {k: {} for k in names}
            rates: dict[str, list[float]] = {k: [] for k in names}
            for r in range(rounds):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    chunk = len(cids[name]) // rounds
                    part = cids[name][r * chunk : (r + 1) * chunk if r < rounds - 1 else None]
                    c0, e0, p0 = proc_cpu_seconds(), emu.cpu_seconds(), proc_cpu_seconds(proxy.pid)
                    t0 = time.perf_counter()
                    senders[name](part)
                    t1 = time.perf_counter()
                    c1, e1, p1 = proc_cpu_seconds(), emu.cpu_seconds(), proc_cpu_seconds(proxy.pid)
                    seconds[name] += t1 - t0
                    cpu[name] += c1 - c0
                    emu_cpu[name] += e1 - e0
                    proxy_cpu[name] += p1 - p0
                    rates[name].append(len(part) / (t1 - t0))
                    for k, v in proxy.reset().items():
                        counts[name][k] = counts[name].get(k, 0) + v
            stored = {name: [emu.call("count_messages", cid) for cid in cids[name]] for name in names}
            senders["_close"]()

    def paired(a: str, b: str) -> float:
        return median([x / y for x, y in zip(rates[a], rates[b], strict=True)])

    return {
        "delay_ms": delay * 1000,
        "rounds": rounds,
        "max_in_flight": 10,
        "ratio_batch_doto": paired("batch", "doto"),
        "ratio_doto_http": paired("doto", "http"),
        "ratio_doto_http_reused": paired("doto", "http_reused"),
        **{
            name: {
                "messages": sizes[name],
                "seconds": seconds[name],
                "msgs_per_s": sizes[name] / seconds[name],
                "msgs_per_s_rounds": [round(x, 1) for x in rates[name]],
                "ms_per_msg": seconds[name] * 1000 / sizes[name],
                "client_cpu_ms_per_msg": cpu[name] * 1000 / sizes[name],
                "emulator_cpu_share": emu_cpu[name] / seconds[name],
                "proxy_cpu_share": proxy_cpu[name] / seconds[name],
                "connections": counts[name].get("connections", 0),
                "handshakes": counts[name].get("handshakes", 0),
                "bytes": counts[name].get("sent", 0) + counts[name].get("received", 0),
                "exactly_once": all(c == 1 for c in stored[name]),
            }
            for name in names
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_link")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--http-n", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="added each way")
    args = parser.parse_args()
    http_n = args.http_n if args.http_n is not None else args.n
    print(json.dumps(measure(args.n, http_n, args.rounds, args.delay_ms / 1000)))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------


def table_rows(t: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 7) and the targets missed."""
    from bench._fmt import num, ok

    b, d, h, hr = t["batch"], t["doto"], t["http"], t["http_reused"]
    what = f"7 Sends over TLS with {2 * t['delay_ms']:g} ms round-trip latency (proxy)"
    met = t["ratio_doto_http"] >= 2 and all(
        t[c]["exactly_once"] for c in ("batch", "doto", "http", "http_reused")
    )

    def emu(*clients: dict[str, Any]) -> str:
        return " / ".join(f"{c['emulator_cpu_share']:.2f}" for c in clients)

    def shakes(c: dict[str, Any]) -> str:
        return f"{c['handshakes']:,} ({c['connections']:,})"

    return [
        [
            f"{what}, {b['messages']:,} messages: DotoAsyncHook.send_messages (10 in flight) vs sequential "
            "DotoHook.send_message, msgs/s",
            num(b["msgs_per_s"], 0),
            f"{num(d['msgs_per_s'], 0)} (sequential)",
            f"{t['ratio_batch_doto']:.2f}x",
            "-",
            "-",
            emu(b, d),
        ],
        [
            f"{what}: sequential DotoHook.send_message ({d['messages']:,}) vs HttpHook.run, a new hook per call "
            f"as each HttpOperator task ({h['messages']:,}), msgs/s",
            num(d["msgs_per_s"], 1),
            f"{num(h['msgs_per_s'], 1)} (HttpHook)",
            f"{t['ratio_doto_http']:.2f}x",
            ">= 2x",
            ok(met),
            emu(d, h),
        ],
        [
            f"{what} (reference): sequential DotoHook.send_message vs one HttpHook reused for every call "
            f"({hr['messages']:,}), msgs/s",
            num(d["msgs_per_s"], 1),
            f"{num(hr['msgs_per_s'], 1)} (HttpHook reused)",
            f"{t['ratio_doto_http_reused']:.2f}x",
            "-",
            "-",
            emu(d, hr),
        ],
        [
            f"{what}: TLS handshakes (TCP connections) at the proxy: DotoHook vs HttpHook per call "
            "[batch; HttpHook reused]",
            shakes(d),
            f"{shakes(h)} [{shakes(b)}; {shakes(hr)}]",
            "-",
            "-",
            "-",
            "-",
        ],
    ], [] if met else ["7"]


def describe(t: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 7)."""
    names = ("batch", "doto", "http", "http_reused")
    return (
        f"**7. Sends over TLS with latency.** The emulator (its own process) serves https with a self-signed "
        "certificate for 127.0.0.1 (EC P-256, made at run time with `cryptography`); the Doto hooks trust it "
        "through `REQUESTS_CA_BUNDLE` (the documented way, read by both hooks), HttpHook through its "
        "connection's `verify` extra. Between client and emulator a proxy (another process, asyncio) holds "
        f"every chunk {t['delay_ms']:g} ms in each direction, so a round trip costs "
        f"{2 * t['delay_ms']:g} ms more; as the TCP handshake with the proxy itself is local, the proxy "
        f"holds a new connection's first bytes one more round trip ({2 * t['delay_ms']:g} ms), standing in "
        "for SYN/SYN-ACK. It counts TCP connections and TLS handshakes (connections that open with a "
        "ClientHello); TLS 1.3 on both ends. Each client sends one message to each conversation of its own "
        f"(fresh ones), the clients taking turns in {t['rounds']} rounds (order rotating), after 5 warm-up "
        "sends each (imports, connection lookup, first handshake); msgs/s is messages over the summed time, "
        "ratios are medians of the per-round ratios. `batch`: `DotoAsyncHook.send_messages([BatchItem(...)], "
        "max_in_flight=10)` per round; `doto`: `DotoHook.send_message` in a loop; `HttpHook` "
        "(apache-airflow-providers-http): `HttpHook(method='POST', http_conn_id=...).run(endpoint, json=..., "
        "headers=...)`, a new hook for every call as each `HttpOperator` task (or mapped instance) does; "
        "HttpHook reused: one hook for all calls. A reused HttpHook keeps its connection alive: its "
        "`TCPKeepAliveAdapter`, so its connection pool, lives with the hook instance and is mounted on every "
        "call's new session, so the handshake is paid per hook, not per call. The batch's connections sit idle "
        "between its rounds for longer than aiohttp's keep-alive timeout (15 s by default), so each round opens "
        "its own (up to 10). Per client: "
        + "; ".join(
            f"{c} {t[c]['ms_per_msg']:.1f} ms a message (client CPU {t[c]['client_cpu_ms_per_msg']:.2f} ms), "
            f"msgs/s per round {t[c]['msgs_per_s_rounds']}, {t[c]['bytes']:,} B through the proxy, proxy CPU share "
            f"{t[c]['proxy_cpu_share']:.2f}"
            for c in names
        )
        + f". Every message landed exactly once: {all(t[c]['exactly_once'] for c in names)}.\n"
    )
