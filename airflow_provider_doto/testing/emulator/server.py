"""DotoEmulator: a real HTTP Doto Messages API on loopback, served from a background thread."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_provider_doto.testing.emulator.account import Inbox
from airflow_provider_doto.testing.emulator.attachments import StorageApp
from airflow_provider_doto.testing.emulator.clock import Clock
from airflow_provider_doto.testing.emulator.faults import Fault, FaultBook, FaultKind
from airflow_provider_doto.testing.emulator.flavors import FLAVORS, EmulatorKnobs, Flavor
from airflow_provider_doto.testing.emulator.recorder import RecordedRequest, RequestLog
from airflow_provider_doto.testing.emulator.store import UNSET, Store
from airflow_provider_doto.testing.emulator.throttle import Throttle, ThrottleRule

if TYPE_CHECKING:
    from pathlib import Path

    import uvicorn

    from airflow_provider_doto.testing.emulator.middleware import FrontDoor

DEFAULT_TOKEN = "doto-emulator-token"
STARTUP_TIMEOUT = 15.0


def check_loopback(host: str, allow_non_loopback: bool = False) -> None:
    """Refuse to expose the emulator beyond this machine unless explicitly allowed."""
    if allow_non_loopback or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind the Doto emulator to non-loopback host {host!r}; "
            "use 127.0.0.1, ::1 or localhost, or pass allow_non_loopback=True"
        )


class DotoEmulator(EmulatorKnobs):
    """A local Doto Messages API server with seedable state, knobs and fault injection.

    Use as a context manager, or call ``start()`` / ``stop()``. All methods are thread-safe.

    ``flavor`` picks the server's personality: ``"doto"`` (Doto's reference: ``before``/``after``
    are timestamps, string message types) or ``"chatwoot"`` (Chatwoot's real server: ids, integer
    types, fixed page caps, soft delete, flood guard). Message ids are one account-wide sequence
    starting at ``first_message_id`` and growing by ``id_step``; both survive ``reset()``. The
    ``flavor`` and knob properties come from ``EmulatorKnobs`` (``flavors.py``).
    """

    FLAVORS = FLAVORS

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        account_id: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_non_loopback: bool = False,
        max_recorded_requests: int | None = 100_000,
        flavor: Flavor | str = "doto",
        first_message_id: int = 1,
        id_step: int = 1,
    ) -> None:
        if not token:
            raise ValueError("token must be a non-empty string")
        check_loopback(host, allow_non_loopback)
        self.token = token
        self.account_id = int(account_id)
        self.host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self.clock = Clock()
        self._store = Store(self.account_id, self.clock, flavor, first_message_id, id_step)
        self._store.start_storage = self._start_storage  # a POSTed attachment starts it too
        self._faults = FaultBook()
        self._log = RequestLog(max_recorded_requests)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._front: FrontDoor | None = None
        self._tls_servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._throttle: Throttle | None = None
        # The "storage" listener attachments redirect to; started with the first attachment.
        self._storage: StorageApp | None = None
        self._storage_server: tuple[uvicorn.Server, threading.Thread] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> DotoEmulator:
        """Bind the port and serve in a daemon thread; returns once the server accepts connections."""
        if self._server is not None:
            return self
        from airflow_provider_doto.testing.emulator.app import build_app
        from airflow_provider_doto.testing.emulator.middleware import FrontDoor

        sock = self._bind(self._requested_port)
        self._port = sock.getsockname()[1]
        store = self._store
        self._front = FrontDoor(
            build_app(store),
            self.token,
            self._faults,
            self._log,
            lambda: store.generation,
            bot_tokens=lambda: store.bot_tokens,
            throttle=lambda: self._throttle,
        )
        self._server, self._thread = self._serve(sock)
        store.api_url = self.base_url
        return self

    def serve_tls(self, certfile: str | Path, keyfile: str | Path) -> str:
        """Serve the same API (same state, token and faults) over TLS as well, on another free port
        of the same host, until ``stop()``; its ``https://`` base URL."""
        if self._front is None or self._server is None:
            raise RuntimeError("the emulator has not been started")
        sock = self._bind(0)
        port = sock.getsockname()[1]
        self._tls_servers.append(self._serve(sock, str(certfile), str(keyfile)))
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{port}"

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _start_storage(self) -> StorageApp:
        """The storage listener (another port of the same host: another origin), started once."""
        if self._storage is None or self._storage_server is None:
            if self._server is None:
                raise RuntimeError("the emulator has not been started")
            storage = StorageApp(self._store.blobs, self.token)
            sock = self._bind(0)
            port = sock.getsockname()[1]
            self._storage_server = self._serve(sock, app=storage)
            self._storage = storage
            host = f"[{self.host}]" if ":" in self.host else self.host
            self._store.storage_url = f"http://{host}:{port}"
        return self._storage

    def _serve(
        self,
        sock: socket.socket,
        certfile: str | None = None,
        keyfile: str | None = None,
        app: Any = None,
    ) -> tuple[uvicorn.Server, threading.Thread]:
        """Serve the front door (or ``app``) on the bound ``sock`` from a daemon thread (over TLS
        with ``certfile`` and ``keyfile``); returns once it accepts connections."""
        import uvicorn  # imported here so importing this module stays cheap

        assert self._front is not None
        config = uvicorn.Config(
            app or self._front,
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            backlog=2048,  # benchmarks open ~1000 connections at once
            limit_concurrency=None,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        server = uvicorn.Server(config)
        port = sock.getsockname()[1]
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"doto-emulator:{port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the Doto emulator failed to start on {self.host}:{port}")
            time.sleep(0.01)
        return server, thread

    def stop(self) -> None:
        """Stop serving (the TLS listeners too) and wait for the threads; safe to call twice."""
        servers = self._tls_servers
        if self._storage_server is not None:
            servers = [*servers, self._storage_server]
        if self._server is not None and self._thread is not None:
            servers = [(self._server, self._thread), *servers]
        self._server = self._thread = None
        self._tls_servers = []
        self._storage_server = self._storage = None
        self._store.storage_url = None
        for server, thread in servers:
            server.should_exit = True
            thread.join(timeout=10)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=5)

    def __enter__(self) -> DotoEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def messages_url(self, conversation_id: int, account_id: int | None = None) -> str:
        """The full URL of a conversation's messages endpoint."""
        account = self.account_id if account_id is None else account_id
        return f"{self.base_url}/api/v1/accounts/{account}/conversations/{conversation_id}/messages"

    def connection_json(self, conn_type: str = "doto", **extra: Any) -> str:
        """An Airflow connection as JSON, e.g. for ``AIRFLOW_CONN_DOTO_DEFAULT``."""
        return json.dumps(
            {
                "conn_type": conn_type,
                "host": self.base_url,
                "password": self.token,
                "extra": {"account_id": self.account_id, **extra},
            }
        )

    def connection_uri(self, conn_type: str = "doto", **extra: Any) -> str:
        """The same connection as an Airflow URI; Airflow parses it back to ``host=base_url``."""
        # Airflow's own get_uri() form: the host's scheme is kept and host:port is one quoted host.
        host = quote(self.base_url.split("://", 1)[1], safe="")
        query = urlencode({"account_id": self.account_id, **extra})
        return f"{conn_type}://http://:{quote(self.token, safe='')}@{host}/?{query}"

    # -- state: seeding and inspection -------------------------------------------------------------

    def add_account(self, account_id: int) -> int:
        return self._store.add_account(account_id)

    def add_inbox(
        self,
        channel: str,
        name: str | None = None,
        *,
        inbox_id: int | None = None,
        account_id: int | None = None,
        agent_reply_time_window: int | None = None,
        human_agent: bool = False,
    ) -> int:
        """Add an inbox of ``channel`` (``api``, ``web_widget``, ``email``, ``whatsapp``,
        ``twilio_whatsapp``, ``twilio_sms``, ``sms``, ``facebook``, ``instagram``, ``tiktok``,
        ``telegram``, ``line``); returns its id (inboxes 1, API, and 2, web widget, always exist).

        ``agent_reply_time_window`` (hours) gives an API inbox a reply window; ``human_agent``
        stretches Messenger's and Instagram's 24-hour window to 7 days.
        """
        return self._store.add_inbox(
            channel,
            name,
            inbox_id=inbox_id,
            account_id=account_id,
            agent_reply_time_window=agent_reply_time_window,
            human_agent=human_agent,
        )

    def add_template(self, inbox_id: int, name: str, language: str | None = None) -> None:
        """Approve a template in a WhatsApp inbox (its registry): ``name``, in ``language`` or in any.

        A message with ``template_params`` naming it is sent as a template even outside the window
        (its status moves like free text inside the window); an unknown name or language fails
        ``window_failure_delay`` seconds after the 200 with Meta's "(#132001) Template name does not
        exist in the translation".
        """
        self._store.add_template(inbox_id, name, language)

    def templates(self, inbox_id: int) -> list[tuple[str, str | None]]:
        """The templates approved in an inbox: ``(name, language or None)``, sorted."""
        return self._store.templates(inbox_id)

    def inboxes(self, account_id: int | None = None) -> list[Inbox]:
        """The account's inboxes (copies): ``inbox_id``, ``channel``, ``channel_type``, ``reply_window``..."""
        return self._store.inboxes(account_id)

    def add_team(self, name: str, team_id: int | None = None, account_id: int | None = None) -> int:
        """Add a team (for ``team_id`` filters and ``meta.team``); returns its id."""
        return self._store.add_team(name, team_id, account_id)

    def add_conversation(
        self,
        conversation_id: int | None = None,
        account_id: int | None = None,
        api_inbox: bool = True,
        *,
        inbox_id: int | None = None,
        status: str = "open",
        labels: Sequence[str] = (),
        priority: str | None = None,
        assignee: str | None = None,
        team_id: int | None = None,
        contact: str | None = None,
        created_at: int | None = None,
    ) -> int:
        """Create a conversation (next free id by default), created now unless ``created_at``.

        Without ``inbox_id`` it lands in the account's API inbox, or with ``api_inbox=False`` in
        its web-widget inbox (incoming POSTs then answer 422). ``assignee`` is an agent's name
        (``"Doto Agent"`` is the token's own user, ``assignee_type=me``); ``contact`` the
        customer's name (default ``"Jane Doe"``), also the default sender of its incoming messages.
        """
        return self._store.add_conversation(
            conversation_id,
            account_id,
            api_inbox,
            inbox_id=inbox_id,
            status=status,
            labels=labels,
            priority=priority,
            assignee=assignee,
            team_id=team_id,
            contact=contact,
            created_at=created_at,
        )

    def update_conversation(
        self,
        conversation_id: int,
        *,
        status: str = UNSET,
        labels: Sequence[str] = UNSET,
        priority: str | None = UNSET,
        assignee: str | None = UNSET,
        team_id: int | None = UNSET,
        snoozed_until: int | None = UNSET,
        account_id: int | None = None,
    ) -> None:
        """Change what is given (status, labels, priority, assignee name or None, team, snoozed_until),
        as an agent would: ``updated_at`` moves to the clock's now, nothing else does."""
        self._store.update_conversation(
            conversation_id,
            status=status,
            labels=labels,
            priority=priority,
            assignee=assignee,
            team_id=team_id,
            snoozed_until=snoozed_until,
            account_id=account_id,
        )

    def conversation(self, conversation_id: int, account_id: int | None = None) -> dict[str, Any]:
        """The conversation exactly as ``GET .../conversations/:id`` answers it."""
        return self._store.conversation_state(conversation_id, account_id)

    def build_account(
        self, conversations: int, messages: int = 2, *, seed: int = 0, account_id: int | None = None
    ) -> list[int]:
        """Create ``conversations`` realistic conversations of ``messages`` support-chat lines each,
        spread over inboxes of every common channel, statuses, labels, priorities, agents and teams
        (deterministic for a ``seed``); returns their ids. The first is open, unassigned, in the
        API inbox, its last line now; the others were last active within the past 30 days."""
        from airflow_provider_doto.testing.emulator.seed import SUPPORT_CHAT

        return self._store.build_account(
            conversations, messages, SUPPORT_CHAT, seed=seed, account_id=account_id
        )

    def add_message(
        self,
        conversation_id: int,
        content: str | None,
        message_type: str | int = "incoming",
        private: bool = False,
        created_at: int | None = None,
        sender_type: str | None = None,
        sender_name: str | None = None,
        content_attributes: dict[str, Any] | None = None,
        content_type: str = "text",
        visible: bool = True,
        late: int = 0,
        account_id: int | None = None,
        attachments: Sequence[tuple[str, bytes] | tuple[str, bytes, str | None]] = (),
    ) -> dict[str, Any]:
        """Store a message as if it arrived; returns it (string message_type).

        ``created_at`` defaults to ``clock.now()``. ``visible=False`` hides it from lists until
        ``reveal(id)``; ``late=N`` hides it until N more messages land in the same conversation.
        ``attachments``: files as ``(file name, bytes)`` or ``(file name, bytes, content type)``
        (guessed from the name when absent); the message lists them as Chatwoot does, each
        ``data_url`` on this server answering 302 to the storage listener (``storage_url``).
        """
        if attachments:
            self._start_storage()
        return self._store.add_message(
            conversation_id,
            content,
            message_type=message_type,
            private=private,
            created_at=created_at,
            sender_type=sender_type,
            sender_name=sender_name,
            content_attributes=content_attributes,
            content_type=content_type,
            visible=visible,
            late=late,
            account_id=account_id,
            attachments=attachments,
        )

    def reveal(self, message_id: int) -> None:
        """Make a hidden message show up in lists."""
        self._store.reveal(message_id)

    def messages(
        self, conversation_id: int, include_deleted: bool = True, account_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Every stored message (hidden ones too), oldest first, with string message types."""
        return self._store.messages(conversation_id, include_deleted, account_id)

    def message(self, message_id: int) -> dict[str, Any]:
        """One stored message by id."""
        return self._store.message(message_id)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the server, oldest first, token masked."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        self._log.clear()

    # -- attachments' storage -------------------------------------------------------------------------

    @property
    def storage_url(self) -> str:
        """The storage listener's base URL (another port: another origin), started if need be."""
        self._start_storage()
        assert self._store.storage_url is not None
        return self._store.storage_url

    @property
    def storage_requests(self) -> list[RecordedRequest]:
        """Every request that reached the storage listener, oldest first. Headers are masked like
        ``requests``' (a token that arrived shows as ``***``, under its header's name)."""
        return [] if self._storage is None else self._storage.log.snapshot()

    def clear_storage_requests(self) -> None:
        if self._storage is not None:
            self._storage.log.clear()

    @property
    def in_flight(self) -> int:
        """HTTP requests the server is handling right now, including ones sleeping in a ``delay`` fault
        (wait for 0 to know that nothing is still on its way, instead of sleeping)."""
        return self._front.in_flight if self._front is not None else 0

    def reset(self, flavor: Flavor | str | None = None, first_message_id: int | None = None) -> None:
        """Back to a fresh state (default account only, default knobs, real-time clock); keeps serving.

        ``flavor`` switches personality (None keeps the current one); the knobs get that flavor's
        defaults. ``first_message_id`` (None keeps it) restarts the id sequence there. Bot tokens
        are forgotten. Requests still sleeping in a ``delay`` fault are dropped, not committed later.
        """
        if first_message_id is not None:
            if int(first_message_id) < 1:
                raise ValueError("first_message_id must be positive")
            self._store.first_message_id = int(first_message_id)
        self._faults.clear()
        self._throttle = None
        self._store.reset(flavor)
        self.clock.reset()
        self._log.clear()
        self.clear_storage_requests()

    # -- ids, tokens, other resources -----------------------------------------------------------------

    @property
    def first_message_id(self) -> int:
        """The id the message sequence starts at after ``reset()``."""
        return self._store.first_message_id

    @property
    def id_step(self) -> int:
        """The gap between consecutive message ids (1 = consecutive)."""
        return self._store.id_step

    def add_bot_token(self, token: str) -> str:
        """Accept ``token`` as an agent bot's: it may only create messages (sender type agent bot)
        and toggle a conversation's status or priority."""
        if not token or token == self.token:
            raise ValueError("a bot token must be non-empty and differ from the user token")
        with self._store.lock:
            self._store.bot_tokens.add(token)
        return token

    @property
    def bot_tokens(self) -> frozenset[str]:
        return frozenset(self._store.bot_tokens)

    def profile_url(self) -> str:
        """``GET`` this for the token's user and accounts."""
        return f"{self.base_url}/api/v1/profile"

    def conversations_url(self, account_id: int | None = None) -> str:
        """The account's conversation list (``/meta`` and ``/{id}`` below it)."""
        account = self.account_id if account_id is None else account_id
        return f"{self.base_url}/api/v1/accounts/{account}/conversations"

    def conversation_url(self, conversation_id: int, account_id: int | None = None) -> str:
        """One conversation: ``GET`` it, or POST to its ``/toggle_status``, ``/toggle_priority``, ``/labels``."""
        return f"{self.conversations_url(account_id)}/{conversation_id}"

    # -- throttle (rack-attack) -----------------------------------------------------------------------

    def set_throttle(self, limit: int | None, period: float = 60.0) -> None:
        """Throttle like Chatwoot's rack-attack: at most ``limit`` requests per client IP in each
        ``period`` seconds, the windows aligned to the epoch (real time, not ``clock``); every
        request counts, refused ones too; over the limit a 429 ``text/plain`` "Retry later" with no
        ``Retry-After``. ``None`` turns it off (as ``reset()`` does). Counts start afresh."""
        self._throttle = None if limit is None else Throttle(ThrottleRule(limit, period))

    @property
    def throttle(self) -> tuple[int, float] | None:
        """The throttle as ``(limit, period)``, or None (off, the default)."""
        throttle = self._throttle
        return None if throttle is None else (throttle.rule.limit, throttle.rule.period)

    @property
    def throttled_requests(self) -> int:
        """Requests answered 429 by the throttle since it was set."""
        throttle = self._throttle
        return 0 if throttle is None else throttle.throttled

    # -- faults --------------------------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        status: int | None = None,
        retry_after: int | str | None = None,
        delay: float | None = None,
        body: bytes | str | None = None,
        content_type: str | None = None,
    ) -> Fault:
        """Spoil the next ``times`` requests matching ``method`` and ``path_contains`` (a ``status``
        fault answers ``body``, by default ``{"error": ...}``, as ``content_type``, by default guessed)."""
        fault = Fault(
            kind=kind,
            times=times,
            method=method,
            path_contains=path_contains,
            status=status,
            retry_after=retry_after,
            delay=delay,
            body=body.encode() if isinstance(body, str) else body,
            content_type=content_type,
        )
        return self._faults.add(fault)

    @property
    def faults(self) -> list[Fault]:
        """Faults not yet used up."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        self._faults.clear()
