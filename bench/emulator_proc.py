"""The emulator in a child process, so its CPU never counts as the client's.

The child runs :class:`~airflow_provider_doto.testing.emulator.DotoEmulator` (uvicorn, backlog 2048) and
answers a few commands over a pipe: seeding (one conversation, or a whole account), scheduled
messages and bursts (for latency), request counts (by kind), a counting proxy of its own (so the
proxy's CPU is the emulator side's, not the client's), and ``run`` (a benchmark's own seeding
function, called with the emulator).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any

from bench.machine import proc_cpu_seconds

TOKEN = "bench-token"


def _child(
    conn: Any,
    flavor: str = "doto",
    first_message_id: int = 1,
    tls: tuple[str, str] | None = None,
    max_recorded_requests: int = 10_000,
) -> None:
    from airflow_provider_doto.testing.emulator import DotoEmulator

    emu = DotoEmulator(
        token=TOKEN,
        account_id=1,
        max_recorded_requests=max_recorded_requests,
        flavor=flavor,
        first_message_id=first_message_id,
    )
    emu.start()
    # The same emulator (one store) over TLS as well, with the caller's certificate and key files.
    tls_url = emu.serve_tls(*tls) if tls else ""
    created: dict[int, list[float]] = {}
    lock = threading.Lock()
    proxies: list[Any] = []  # counting proxies started in this process (``proxy``), kept alive

    def add_later(schedule: list[tuple[int, float]]) -> None:
        # (conversation, wall-clock time) pairs: add an incoming message then, note when it landed.
        for cid, when in sorted(schedule, key=lambda item: item[1]):
            pause = when - time.time()
            if pause > 0:
                time.sleep(pause)
            emu.add_message(cid, "ping", message_type="incoming")
            with lock:
                created.setdefault(cid, []).append(time.time())

    def handle(cmd: str, args: tuple[Any, ...]) -> Any:
        if cmd == "info":
            return {
                "base_url": emu.base_url,
                "token": emu.token,
                "account_id": emu.account_id,
                "flavor": emu.flavor,
                "tls_url": tls_url,
            }
        if cmd == "add_conversations":
            return [emu.add_conversation() for _ in range(args[0])]
        if cmd == "seed":  # count, ending ``age`` seconds ago
            count, age = args
            cid = emu.add_conversation()
            now = emu.clock.now() - age
            for i in range(count):
                emu.add_message(
                    cid, "Hello, I need help with my order.", created_at=now - (count - 1 - i) * 20
                )
            return cid
        if cmd == "page_cap":
            emu.page_cap = args[0]
            return None
        if cmd == "request_count":
            return len(emu.requests)
        if cmd == "clear_requests":
            emu.clear_requests()
            return None
        if cmd == "schedule":
            threading.Thread(target=add_later, args=(args[0],), daemon=True).start()
            return None
        if cmd == "created":
            with lock:
                return {cid: list(times) for cid, times in created.items()}
        if cmd == "count_messages":
            return len(emu.messages(args[0]))
        if cmd == "run":  # ("module:function", *args): function(emu, *args) here, e.g. a benchmark's seeding
            import importlib

            module, name = args[0].split(":")
            return getattr(importlib.import_module(module), name)(emu, *args[1:])
        if cmd == "count_all":  # messages stored in each of these conversations
            return [len(emu.messages(cid)) for cid in args[0]]
        if cmd == "throttle":  # (limit, period) or (None,): rack-attack's fixed window, counts afresh
            emu.set_throttle(*args)
            return None
        if cmd == "throttled":
            return emu.throttled_requests
        if cmd == "build_account":  # conversations, seed: realistic conversations across inboxes
            return emu.build_account(args[0], seed=args[1])
        if cmd == "supports_updated_within":  # False: an older server that ignores the param
            emu.supports_updated_within = bool(args[0])
            return None
        if cmd == "burst":  # one incoming message in each given conversation, now
            landed: dict[int, float] = {}
            for cid in args[0]:
                emu.add_message(cid, "ping", message_type="incoming")
                landed[cid] = time.time()
            with lock:
                for cid, at in landed.items():
                    created.setdefault(cid, []).append(at)
            return landed
        if cmd == "proxy":  # a counting TCP proxy in this process (its CPU counts as the emulator's)
            from bench.proxy import CountingProxy

            host, port = emu.base_url.split("://", 1)[1].rsplit(":", 1)
            proxies.append(CountingProxy(host, int(port)).__enter__())
            return proxies[-1].base_url
        if cmd == "proxy_reset":  # (sent, received, connections) since the last reset
            return proxies[-1].reset()
        if cmd == "request_kinds":  # requests since the last clear by kind, then clear
            kinds = {"list": 0, "messages": 0, "other": 0}
            for request in emu.requests:
                if request.path.endswith("/conversations"):
                    kinds["list"] += 1
                elif request.path.endswith("/messages"):
                    kinds["messages"] += 1
                else:
                    kinds["other"] += 1
            emu.clear_requests()
            return kinds
        raise ValueError(cmd)

    conn.send(("ready", os.getpid()))
    while True:
        try:
            cmd, args = conn.recv()
        except EOFError:
            break
        if cmd == "stop":
            break
        try:
            conn.send(("ok", handle(cmd, args)))
        except Exception as err:  # report, keep serving
            conn.send(("error", repr(err)))
    emu.stop()
    conn.send(("ok", None))


class EmulatorProcess:
    """``with EmulatorProcess() as emu:`` a Doto emulator in a spawned child process.

    ``flavor`` and ``first_message_id`` are the emulator's (``"doto"`` or ``"chatwoot"``; ids start there).
    ``tls=(certfile, keyfile)`` serves it over TLS as well, at ``tls_url``. ``max_recorded_requests``
    bounds the emulator's request log (``request_count``/``request_kinds`` read it).
    """

    def __init__(
        self,
        flavor: str = "doto",
        first_message_id: int = 1,
        tls: tuple[str, str] | None = None,
        max_recorded_requests: int = 10_000,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child,
            args=(child_conn, flavor, first_message_id, tls, max_recorded_requests),
            name="doto-emulator",
            daemon=True,
        )
        self.flavor = flavor
        self.first_message_id = first_message_id
        self.pid = 0
        self.base_url = ""
        self.tls_url = ""
        self.token = TOKEN
        self.account_id = 1

    def __enter__(self) -> EmulatorProcess:
        self._proc.start()
        _status, self.pid = self._conn.recv()
        info = self.call("info")
        self.base_url, self.account_id = info["base_url"], info["account_id"]
        self.tls_url = info["tls_url"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send(("stop", ()))
            self._conn.recv()
        except (OSError, EOFError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()

    def call(self, cmd: str, *args: Any) -> Any:
        self._conn.send((cmd, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator command {cmd} failed: {value}")
        return value

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.base_url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)

    def connection_json(self, base_url: str | None = None, **extra: Any) -> str:
        """A ``doto`` connection to this emulator (or to ``base_url``); ``extra`` adds e.g. ``flavor``.

        Pacing is off unless ``extra`` sets ``max_requests_per_minute``: the benchmarks measure the
        client's own cost against an emulator that does not throttle (as they did before pacing
        existed); benchmark 9 (``bench/pacing.py``) sets it to measure pacing itself.
        """
        import json

        return json.dumps(
            {
                "conn_type": "doto",
                "host": base_url or self.base_url,
                "password": self.token,
                "extra": {"account_id": self.account_id, "max_requests_per_minute": 0, **extra},
            }
        )

    def http_connection_json(self, base_url: str | None = None) -> str:
        """The same server as a generic ``http`` connection, for the http provider's baseline."""
        import json

        host, port = (base_url or self.base_url).split("://", 1)[1].rsplit(":", 1)
        return json.dumps({"conn_type": "http", "host": host, "port": int(port), "schema": "http"})
