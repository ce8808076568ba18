"""DotoHook: the ``doto`` connection and a requests transport over :mod:`airflow_provider_doto.api`.

``requests`` and ``tenacity`` are imported where used, not at module top: DAG files that import an
operator pay for neither at parse time.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.sdk import BaseHook

from airflow_provider_doto import api
from airflow_provider_doto._retry import raise_if_retryable, retry_settings
from airflow_provider_doto.api._attachments import (
    CHUNK_SIZE,
    check_downloadable,
    download_flow,
)
from airflow_provider_doto.api._conversations import (
    ConversationFields,
    ConversationPager,
    ConversationQuery,
    get_conversation_flow,
    list_conversations_flow,
)
from airflow_provider_doto.api._delivery import check_send_once, send_once_flow
from airflow_provider_doto.api._flavors import resolve_flow
from airflow_provider_doto.api._flows import (
    check_connection_flow,
    delete_message_flow,
    run_flow,
    send_message_flow,
)
from airflow_provider_doto.api._http import DotoResponse, headers
from airflow_provider_doto.api._listing import MessagePager, read_window_flow
from airflow_provider_doto.api._settings import DEFAULT_TIMEOUT
from airflow_provider_doto.api._status import (
    DEFAULT_DELIVERY_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DeliveryWait,
    check_wait_for,
    read_back_flow,
)
from airflow_provider_doto.api._uploads import Upload, check_uploads
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoError,
)
from airflow_provider_doto.hooks._pacing import pacer_for, send_paced
from airflow_provider_doto.hooks._transport import (
    REQUESTS_ERRORS,
    Exchange,
    ca_bundle,
    map_download_errors,
    map_errors,
)
from airflow_provider_doto.hooks._uploads import AttachmentSource, StreamedBody, uploads_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import requests

    from airflow_provider_doto.api import Conversation, DotoSettings, Message, Timestamp
    from airflow_provider_doto.api._account_watch import AccountWatch
    from airflow_provider_doto.api._http import DotoRequest, DotoResponse

log = logging.getLogger(__name__)

# What ``auto`` found, per server and account: immutable values, written only by :func:`keep_reading`,
# so the probe runs once per process for every hook of that server.
_found_readings: dict[tuple[str, int], str] = {}


def found_reading(settings: DotoSettings) -> api.ServerReading:
    """The connection's reading of its server: as configured, or what ``auto`` found in this process."""
    return settings.reading.learned(_found_readings.get((settings.base_url, settings.account_id)))


def keep_reading(settings: DotoSettings, reading: api.ServerReading) -> api.ServerReading:
    """Remember what ``auto`` found for the hooks of this server, and log it the first time."""
    key = (settings.base_url, settings.account_id)
    if settings.reading.known is None and reading.known is not None and key not in _found_readings:
        _found_readings[key] = reading.known
        log.info(
            "Doto connection %r: the server at %s reads before/after as %s (flavor %r, detected)",
            settings.conn_id,
            settings.base_url,
            "message ids" if reading.known == "chatwoot" else "Unix timestamps",
            reading.known,
        )
    return reading


def listing_now(query: ConversationQuery) -> dt.datetime | None:
    """When a listing by ``active_since`` starts, which its ``updated_within`` is counted from: read
    here, as the transports read theirs, never in the core (and never a caller's logical date)."""
    return dt.datetime.now(dt.UTC) if query.active_since is not None else None


def connection_not_defined(conn_id: str, err: BaseException) -> DotoConfigError:
    """The one connection-loading failure that is a bad configuration: no connection of that id.

    Anything else (a secrets backend or the metadata DB briefly down) keeps its own type and cause:
    it is no configuration mistake, and a trigger waits and tries again.
    """
    return DotoConfigError(f"Doto connection {conn_id!r} could not be loaded: {err}")


class DotoHook(BaseHook):
    """Talks to Doto's Messages API through a ``doto`` connection.

    :param doto_conn_id: connection with Base URL (host), API Token (password), Account ID
        (extra ``account_id``) and optionally a request timeout in seconds (extra ``timeout``).
    :param retry_policy: bounds for automatic retries of one request (see :class:`~api.RetryPolicy`).
    :param timeout: overrides the connection's timeout (seconds) for every request.
    """

    conn_name_attr = "doto_conn_id"
    default_conn_name = "doto_default"
    conn_type = "doto"
    hook_name = "Doto"

    def __init__(
        self,
        doto_conn_id: str = default_conn_name,
        *,
        retry_policy: api.RetryPolicy | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.doto_conn_id = doto_conn_id
        self.retry_policy = retry_policy or api.RetryPolicy()
        self._timeout = timeout

    # ---- connection ----------------------------------------------------------------------

    @cached_property
    def settings(self) -> DotoSettings:
        """The connection, read and validated on first use (never in ``__init__``)."""
        try:
            conn = self.get_connection(self.doto_conn_id)
        except AirflowNotFoundException as err:
            raise connection_not_defined(self.doto_conn_id, err) from err
        return api.DotoSettings.from_connection(self.doto_conn_id, conn, conn.extra_dejson)

    @cached_property
    def session(self) -> requests.Session:
        """One keep-alive session per hook; the token rides only in ``api_access_token``."""
        import requests

        session = requests.Session()
        session.headers.update(headers(self.settings.token))
        # The environment's proxy and CA-bundle settings are read once, here: with trust_env requests
        # re-reads them on every call, a cost BENCHMARKS.md measures. ~/.netrc is not consulted:
        # the token header is the only credential Doto takes.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.base_url))
        session.verify = ca_bundle() or True
        # Redirects are never followed (requests would carry our custom token header to any host):
        # every request passes allow_redirects=False. Not max_redirects=0: requests then raises
        # TooManyRedirects for any 3xx even when not following, hiding the status.
        return session

    @property
    def timeout(self) -> float:
        return self._timeout if self._timeout is not None else self.settings.timeout

    def conversation_url(self, conversation_id: int | str) -> str:
        return self.settings.conversation_url(to_id(conversation_id, name="conversation_id"))

    # ---- the API ---------------------------------------------------------------------------

    def list_messages(
        self,
        conversation_id: int | str,
        *,
        before: Timestamp | None = None,
        after: Timestamp | None = None,
    ) -> list[Message]:
        """Every message of the conversation with ``after < created_at < before``, oldest first.

        Pages through a capped server and de-duplicates by id, so each message comes once.
        """
        flow = read_window_flow(
            self.settings.account_id,
            conversation_id,
            before=before,
            after=after,
            flavor=found_reading(self.settings),
        )
        messages, reading = run_flow(flow, self.send)
        keep_reading(self.settings, reading)
        return messages

    def iter_messages(
        self,
        conversation_id: int | str,
        *,
        after: Timestamp | None = None,
        before: Timestamp | None = None,
    ) -> Iterator[Message]:
        """The messages of :meth:`list_messages`, in the same order, read a page at a time.

        Each page is requested when the previous one has been consumed, so memory holds one page
        (:class:`~MessagePager`), whatever the conversation's length. Arguments are checked
        now, before anything is sent.
        """
        pager = MessagePager(
            self.settings.account_id,
            conversation_id,
            before=before,
            after=after,
            flavor=found_reading(self.settings),
        )

        def pages() -> Iterator[Message]:
            while not pager.done:
                page = run_flow(pager.next_page_flow(), self.send)
                keep_reading(self.settings, pager.reading)
                yield from page

        return pages()

    def list_conversations(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> list[Conversation]:
        """The account's conversations matching the query (its fields, or ``query=``), each once.

        With ``active_since`` those with activity after that time, newest activity first: one
        request where the server honours ``updated_within`` (counted from now, read here), else
        pages by activity and stops past the time (``api._conversations``).
        """
        query = ConversationQuery.of(query, **fields)
        flow = list_conversations_flow(self.settings.account_id, query, now=listing_now(query))
        return run_flow(flow, self.send)

    def iter_conversations(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> Iterator[Conversation]:
        """The conversations of :meth:`list_conversations`, requesting each page when the previous
        one is consumed: memory holds one page. Arguments are checked now, before anything is sent."""
        query = ConversationQuery.of(query, **fields)
        pager = ConversationPager(self.settings.account_id, query, now=listing_now(query))

        def pages() -> Iterator[Conversation]:
            while not pager.done:
                yield from run_flow(pager.next_page_flow(), self.send)

        return pages()

    def conversation_ids(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> list[int]:
        """The ids of the conversations :meth:`iter_conversations` lists, in its order (a page at a time)."""
        return [conversation.id for conversation in self.iter_conversations(query=query, **fields)]

    def get_conversation(self, conversation_id: int | str) -> Conversation:
        """One conversation by its display id; a missing one raises ``DotoNotFoundError``."""
        return run_flow(get_conversation_flow(self.settings.account_id, conversation_id), self.send)

    def send_message(
        self,
        conversation_id: int | str,
        content: str,
        *,
        message_type: str = "outgoing",
        private: bool = False,
        content_type: str = "text",
        content_attributes: dict[str, Any] | None = None,
        check_reply_window: bool = False,
        template: dict[str, Any] | None = None,
        fallback_template: dict[str, Any] | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        attachments: Sequence[AttachmentSource] | None = None,
    ) -> Message:
        """Post a message; returns the created message. Never blindly re-sent after an ambiguous failure.

        ``check_reply_window``: a public outgoing message first reads the conversation (one GET)
        and raises ``DotoReplyWindowError``, sending nothing, when its channel's window is closed.
        ``template``: Chatwoot's ``template_params`` (``name``, ``category``, ``language``,
        ``processed_params``), sent with the message, no window check needed. ``fallback_template``:
        the window is read (one GET) and the template sent only when it is closed; inside it the
        free text goes. A wrong template field raises ``DotoConfigError`` naming it, sending nothing.
        ``wait_for`` (``"sent"``, ``"delivered"`` or ``"read"``): then the message is read back
        until its status reaches that (:meth:`wait_for_delivery`); it is returned with that status.
        ``attachments``: files sent with the message (local paths, ``ObjectStoragePath``s or
        ``(filename, bytes)`` pairs), as the web app uploads them (``multipart/form-data``), each
        streamed a chunk at a time; checked first (:meth:`check_attachments`), nothing sent if refused.
        """
        check_wait_for(wait_for, delivery_timeout)
        uploads = self.check_attachments(attachments)
        flow = send_message_flow(
            self.settings.account_id,
            conversation_id,
            content,
            message_type=message_type,
            private=private,
            content_type=content_type,
            content_attributes=content_attributes,
            check_reply_window=check_reply_window,
            template=template,
            fallback_template=fallback_template,
            attachments=uploads,
        )
        message = run_flow(flow, self.send)
        if wait_for is None:
            return message
        return self.wait_for_delivery(conversation_id, message, wait_for, timeout=delivery_timeout)

    def send_message_once(
        self,
        conversation_id: int | str,
        content: str,
        *,
        key: str,
        look_back_since: Timestamp | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        attachments: Sequence[AttachmentSource] | None = None,
        **options: Any,
    ) -> tuple[Message, bool]:
        """Post a message at most once per delivery ``key``: ``(message, already_delivered)``.

        With ``look_back_since`` (a retried task: when its run started) it first looks among the
        messages since then for the one an earlier try delivered; ``options`` as for :meth:`send_message`
        (``template``, ``fallback_template`` too: free text or template, the same key finds it).
        With ``wait_for`` the message (sent now or found) is then read back until its status reaches
        it (:meth:`wait_for_delivery`): a retry waits on the message it found, never sends another.
        ``attachments`` as for :meth:`send_message`: the key rides in the form's
        ``content_attributes``, so a retry finds the attachment message an earlier try sent.
        """
        check_wait_for(wait_for, delivery_timeout)
        uploads = self.check_attachments(attachments)
        reading = found_reading(self.settings)
        if look_back_since is not None and reading.known is None:
            check_send_once(conversation_id, content, look_back_since=look_back_since, **options)
            reading = self.reading_for(conversation_id)  # probed once, kept for the hooks that follow
        flow = send_once_flow(
            self.settings.account_id,
            conversation_id,
            content,
            key=key,
            look_back_since=look_back_since,
            flavor=reading,
            attachments=uploads,
            **options,
        )
        message, already_delivered = run_flow(flow, self.send)
        if wait_for is not None:
            message = self.wait_for_delivery(conversation_id, message, wait_for, timeout=delivery_timeout)
        return message, already_delivered

    def check_attachments(self, attachments: Sequence[AttachmentSource] | None) -> tuple[Upload, ...]:
        """Each file's name and size (looked at, not read), checked against the server's limits:
        at most 15 files, each within the connection's ``max_upload_mb`` (40 MB by default) and of
        a type the server takes. Raises ``DotoUploadError`` naming the file; nothing is sent."""
        return check_uploads(uploads_of(attachments), self.settings.max_upload_bytes)

    def wait_for_delivery(
        self,
        conversation_id: int | str,
        message: Message,
        wait_for: str,
        *,
        timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Message:
        """Read ``message`` back until its status reaches ``wait_for`` (``sent`` < ``delivered`` <
        ``read``); returns it with that status.

        One request a read (``api._status.read_back_flow``; the server's reading is probed first
        when ``auto`` has not found it yet), the first at once, then one every ``poll_interval``
        seconds. ``failed`` raises ``DotoDeliveryError`` with the server's ``external_error``; so
        does ``timeout`` seconds without reaching it, naming the last status read.
        """
        import time

        cid = to_id(conversation_id, name="conversation_id")
        wait = DeliveryWait(cid, wait_for, timeout, time.monotonic(), poll_interval)
        reading = self.reading_for(cid)
        while True:
            message = self.read_back(cid, message, reading)
            pause = wait.after_read(message, time.monotonic())
            if pause is None:
                return message
            time.sleep(pause)

    def read_back(
        self, conversation_id: int | str, message: Message, reading: api.ServerReading | None = None
    ) -> Message:
        """``message`` as the server has it now (its status), in one request (``api._status.read_back_flow``)."""
        cid = to_id(conversation_id, name="conversation_id")
        reading = self.reading_for(cid) if reading is None else reading
        return run_flow(read_back_flow(self.settings.account_id, cid, message, reading), self.send)

    def delete_message(
        self, conversation_id: int | str, message_id: int | str, *, missing_ok: bool = False
    ) -> bool:
        """Delete a message. True if deleted now, False if already gone and ``missing_ok``."""
        flow = delete_message_flow(
            self.settings.account_id, conversation_id, message_id, missing_ok=missing_ok
        )
        return run_flow(flow, self.send)

    def download_attachment(
        self, attachment: api.Attachment | str, out: BinaryIO, *, chunk_size: int = CHUNK_SIZE
    ) -> int:
        """Write an attachment's bytes (its ``data_url``, or a URL) to ``out``; the byte count.

        Streamed: ``chunk_size`` bytes at a time, never the whole file. The redirects (Active
        Storage answers one to the storage host) are followed here, one hop at a time, and
        the API token goes only to the Base URL's origin (scheme, host and port): every other
        origin is asked through a session that has no token and no cookies of the API's.
        Anything that goes wrong is a :class:`DotoAttachmentError` naming the host's origin only.
        """
        import requests

        url = attachment if isinstance(attachment, str) else check_downloadable(attachment)
        flow = download_flow(url, self.settings.base_url)
        hop = next(flow)
        while True:
            session = self.session if hop.with_token else self._storage_session
            proxies = None if hop.with_token else requests.utils.get_environ_proxies(hop.url)
            with (
                map_download_errors(hop, requests.RequestException),
                session.get(
                    hop.url, stream=True, timeout=self.timeout, allow_redirects=False, proxies=proxies
                ) as response,
            ):
                try:
                    hop = flow.send((response.status_code, response.headers.get("location")))
                    continue  # a redirect: the next hop
                except StopIteration:  # the file: stream it
                    pass
                written = 0
                for chunk in response.iter_content(chunk_size):
                    out.write(chunk)
                    written += len(chunk)
                return written

    @cached_property
    def _storage_session(self) -> requests.Session:
        """The session for any origin but the Base URL's: no token header, its own cookies."""
        import requests

        session = requests.Session()
        session.trust_env = False  # proxies are read per URL, as the API session's are once
        session.verify = ca_bundle() or True
        return session

    def poll(self, watch: api.MessageWatch, conversation_id: int | str) -> list[Message] | None:
        """One poll of a :class:`~api.MessageWatch`: the batch of new messages, or None yet."""
        flow = watch.poll_flow(self.settings.account_id, conversation_id, found_reading(self.settings))
        batch = run_flow(flow, self.send)
        keep_reading(self.settings, watch.reading)  # the watch's own state may have known it already
        return batch

    def poll_account(self, watch: AccountWatch) -> list[Message] | None:
        """One poll of an :class:`~api._account_watch.AccountWatch`: the new messages of any
        conversation (each with its ``conversation_id``), or None yet."""
        flow = watch.poll_flow(
            self.settings.account_id, dt.datetime.now(dt.UTC), found_reading(self.settings)
        )
        batch = run_flow(flow, self.send)
        keep_reading(self.settings, watch.reading)
        return batch

    def reading_for(self, conversation_id: int | str) -> api.ServerReading:
        """How the server reads ``before``/``after``: while ``auto`` has not decided, probed with this
        conversation (still unknown if it is empty). Pagers and watches probe for themselves."""
        reading = found_reading(self.settings)
        if reading.known is None:
            flow = resolve_flow(reading, self.settings.account_id, conversation_id)
            reading = run_flow(flow, self.send)
        return keep_reading(self.settings, reading)

    def test_connection(self) -> tuple[bool, str]:
        """Whether the token works and belongs to the account (:func:`check_connection_flow`).

        One attempt per request, no retry loop; the answer never contains the token.
        """
        try:
            return run_flow(check_connection_flow(self.settings), self._send_once)
        except DotoError as err:
            return False, str(err)

    # ---- transport -------------------------------------------------------------------------

    def send(self, request: DotoRequest) -> DotoResponse:
        """Send one request at the connection's pace with the retry policy; return the last response.

        Each attempt waits for a slot of the process's pacer of this connection (``hooks/_pacing.py``),
        which also waits out a 429 together with every other request of the connection. Other
        retryable failures (see :func:`is_retryable`) are retried with tenacity; anything else is
        returned (an error status) or raised (a transport error) for the flow to map.
        """
        import tenacity

        pacer = pacer_for(self.settings)
        if pacer is None:
            once = self._send_once
        else:

            def once(request: DotoRequest) -> DotoResponse:
                return send_paced(pacer, request, self._send_once, resend=self.retry_policy.attempts > 1)

        retrying = tenacity.Retrying(**retry_settings(request, self.retry_policy, log))
        return retrying(lambda: raise_if_retryable(request, once(request)))

    def _send_once(self, request: DotoRequest) -> DotoResponse:
        """One HTTP exchange; requests' exceptions become typed errors (``REQUESTS_ERRORS``)."""
        exchange = Exchange(request, self.settings.base_url, self.timeout, proxied=bool(self.session.proxies))
        form = request.multipart
        with map_errors(REQUESTS_ERRORS, exchange):
            response = self.session.request(
                request.method,
                request.url(self.settings.base_url),
                params=request.query(),
                json=request.json,
                # Attachments: streamed from their sources with a Content-Length (hooks/_uploads.py).
                data=None if form is None else StreamedBody(form),
                headers=None if form is None else {"Content-Type": form.content_type},
                timeout=self.timeout,
                allow_redirects=False,
            )
            body = response.content
        return DotoResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            base_url=self.settings.base_url,
            received_at=dt.datetime.now(dt.UTC),  # the clock is read here, not in the core
        )

    # ---- connection form (Airflow 3.1 reads these; 3.2+ reads provider info) ---------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import InputRequired, NumberRange, Optional, any_of

        from airflow_provider_doto.get_provider_info import CONN_FIELDS

        return {
            "account_id": IntegerField(
                lazy_gettext(CONN_FIELDS["account_id"]["label"]),
                validators=[InputRequired()],
                widget=BS3TextFieldWidget(),
                description=CONN_FIELDS["account_id"]["description"],
            ),
            "timeout": IntegerField(
                lazy_gettext(CONN_FIELDS["timeout"]["label"]),
                validators=[Optional(), NumberRange(min=1)],
                widget=BS3TextFieldWidget(),
                default=int(DEFAULT_TIMEOUT),
            ),
            # Not a SelectField: Airflow 3.1's UI knows only string/integer/password/boolean fields
            # and drops the whole form otherwise; any_of() becomes the schema's enum (a dropdown).
            "flavor": StringField(
                lazy_gettext(CONN_FIELDS["flavor"]["label"]),
                validators=[any_of(list(api.FLAVORS))],
                widget=BS3TextFieldWidget(),
                default="auto",
                description=CONN_FIELDS["flavor"]["description"],
            ),
            **{
                name: IntegerField(
                    lazy_gettext(CONN_FIELDS[name]["label"]),
                    validators=[Optional(), NumberRange(min=CONN_FIELDS[name]["schema"]["minimum"])],
                    widget=BS3TextFieldWidget(),
                    default=CONN_FIELDS[name]["schema"]["default"],
                    description=CONN_FIELDS[name]["description"],
                )
                for name in (
                    "max_requests_per_minute",
                    "rate_limit_wait_seconds",
                    "rate_limit_window_seconds",
                    "max_upload_mb",
                )
            },
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from airflow_provider_doto.get_provider_info import UI_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}
