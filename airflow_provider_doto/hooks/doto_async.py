"""DotoAsyncHook: the async twin of DotoHook (aiohttp), for triggers, async notifiers and batch sends.

Same flows, same errors, same retry policy as the sync hook; only the transport differs. The
connection is read with Airflow's async connection helpers, never the sync ``get_connection``
(which inside the triggerer only works through a bridge that deployments may turn off).

aiohttp was picked by measurement (``bench/``, figures in BENCHMARKS.md). One ``aiohttp.ClientSession`` (one connection pool, one SSL context) is shared
per event loop, so 1,000 deferred sensors do not each pay for their own. aiohttp is imported where
used, never at module top: DAG files do not pay for its import.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack

from airflow_provider_doto import api
from airflow_provider_doto._retry import raise_if_retryable, retry_settings
from airflow_provider_doto.api._attachments import (
    CHUNK_SIZE,
    check_downloadable,
    download_flow,
)
from airflow_provider_doto.api._batch import (
    batch_item_flow,
    check_items,
    failed_result,
    validate_max_in_flight,
    waited_result,
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
    arun_flow,
    check_connection_flow,
    delete_message_flow,
    send_message_flow,
)
from airflow_provider_doto.api._http import DotoResponse, headers
from airflow_provider_doto.api._listing import MessagePager, read_window_flow
from airflow_provider_doto.api._status import (
    DEFAULT_DELIVERY_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DeliveryWait,
    check_wait_for,
    read_back_flow,
)
from airflow_provider_doto.api._templates import check_template, check_template_use
from airflow_provider_doto.api._uploads import Upload, check_uploads
from airflow_provider_doto.api._values import check_attachments_alone, to_id
from airflow_provider_doto.exceptions import DotoError
from airflow_provider_doto.hooks._pacing import asend_paced, pacer_for
from airflow_provider_doto.hooks._transport import (
    AIOHTTP_ERRORS,
    Exchange,
    amap_errors,
    ca_bundle,
    map_download_errors,
    ssl_context,
)
from airflow_provider_doto.hooks._uploads import AttachmentSource, aiter_body, uploads_of
from airflow_provider_doto.hooks.doto import connection_not_defined, found_reading, keep_reading, listing_now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp

    from airflow_provider_doto.api import Conversation, DotoSettings, Message
    from airflow_provider_doto.api._account_watch import AccountWatch
    from airflow_provider_doto.api._http import DotoRequest, DotoResponse

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 200
# One session per running loop, with the task that closes it when the loop shuts down.
_sessions: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, asyncio.Task[None]]] = {}


async def _async_extra_dejson(conn: Any) -> dict[str, Any]:
    """The connection's extra, read without blocking the loop (``extra_dejson`` masks synchronously)."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:  # common-compat < 1.21: what its helper does below Airflow 3.3.2
        from asgiref.sync import sync_to_async

        return await sync_to_async(lambda: conn.extra_dejson)()
    return await get_async_extra_dejson(conn)


def shared_session() -> aiohttp.ClientSession:
    """The event loop's pooled session. It carries no token: that goes on each request."""
    import aiohttp

    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    # trust_env stays off: it looks up proxies and ~/.netrc in a thread on every request, which
    # doubled the CPU per poll. The hook reads the proxy variables once instead (``env_proxy``), and
    # https is verified against the same CA bundle as the sync hook's (REQUESTS_CA_BUNDLE).
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=ssl_context(ca_bundle()))
    session = aiohttp.ClientSession(connector=connector)
    _sessions[loop] = (session, loop.create_task(_close_with_loop(loop, session)))
    return session


def env_proxy(base_url: str) -> tuple[Any, Any]:
    """``(proxy, proxy_auth)`` from HTTP(S)_PROXY / NO_PROXY for ``base_url``, as requests honours them."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(base_url))
    except LookupError:
        return None, None


async def _close_with_loop(loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
    """Wait forever; when the loop shuts down (``asyncio.run`` cancels its tasks), close the session.

    Without this an unclosed aiohttp session logs an error when it is garbage-collected.
    """
    try:
        await loop.create_future()
    finally:
        if _sessions.get(loop, (None,))[0] is session:
            del _sessions[loop]
        await session.close()


class DotoAsyncHook:
    """Async access to Doto's Messages API through a ``doto`` connection."""

    def __init__(
        self,
        doto_conn_id: str = "doto_default",
        *,
        retry_policy: api.RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        self.doto_conn_id = doto_conn_id
        self.retry_policy = retry_policy or api.RetryPolicy()
        self._timeout = timeout
        self._settings: DotoSettings | None = None
        self._proxy: tuple[Any, Any] = (None, None)

    @property
    def connection_loaded(self) -> bool:
        """Whether :meth:`get_settings` has read the connection (it is kept from then on)."""
        return self._settings is not None

    async def get_settings(self) -> DotoSettings:
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection
            from airflow.providers.common.compat.sdk import AirflowNotFoundException

            try:
                # No hook=: common-compat < 1.17 lacks it, and DotoHook reads connections as BaseHook does.
                conn = await get_async_connection(self.doto_conn_id)
            except AirflowNotFoundException as err:
                raise connection_not_defined(self.doto_conn_id, err) from err
            # Any other failure keeps its type: a secrets backend briefly down is no bad configuration.
            extra = await _async_extra_dejson(conn)
            self._settings = api.DotoSettings.from_connection(self.doto_conn_id, conn, extra)
            self._proxy = env_proxy(self._settings.base_url)
        return self._settings

    async def list_messages(
        self,
        conversation_id: int | str,
        *,
        before: api.Timestamp | None = None,
        after: api.Timestamp | None = None,
    ) -> list[Message]:
        settings = await self.get_settings()
        flow = read_window_flow(
            settings.account_id, conversation_id, before=before, after=after, flavor=found_reading(settings)
        )
        messages, reading = await arun_flow(flow, self.send)
        keep_reading(settings, reading)
        return messages

    async def list_conversations(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> list[Conversation]:
        """The async twin of :meth:`DotoHook.list_conversations` (the same flow)."""
        query = ConversationQuery.of(query, **fields)
        settings = await self.get_settings()
        return await arun_flow(
            list_conversations_flow(settings.account_id, query, now=listing_now(query)), self.send
        )

    def aiter_conversations(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> AsyncIterator[Conversation]:
        """The async twin of :meth:`DotoHook.iter_conversations` (the same pager, one page in memory).

        Not itself async: the arguments are checked when it is called, before anything is sent.
        """
        query = ConversationQuery.of(query, **fields)
        now = listing_now(query)  # when it is called, as the sync hook's

        async def pages() -> AsyncIterator[Conversation]:
            settings = await self.get_settings()
            pager = ConversationPager(settings.account_id, query, now=now)
            while not pager.done:
                for conversation in await arun_flow(pager.next_page_flow(), self.send):
                    yield conversation

        return pages()

    async def conversation_ids(
        self,
        *,
        query: ConversationQuery | None = None,
        **fields: Unpack[ConversationFields],
    ) -> list[int]:
        """The async twin of :meth:`DotoHook.conversation_ids` (the same pager)."""
        return [conversation.id async for conversation in self.aiter_conversations(query=query, **fields)]

    async def get_conversation(self, conversation_id: int | str) -> Conversation:
        """The async twin of :meth:`DotoHook.get_conversation`."""
        settings = await self.get_settings()
        return await arun_flow(get_conversation_flow(settings.account_id, conversation_id), self.send)

    async def send_message(
        self,
        conversation_id: int | str,
        content: str,
        *,
        attachments: Sequence[AttachmentSource] | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        **options: Any,
    ) -> Message:
        """The async twin of :meth:`DotoHook.send_message` (``template``, ``fallback_template``,
        ``check_reply_window``, ``attachments``, ``wait_for`` and the other options alike)."""
        check_wait_for(wait_for, delivery_timeout)
        settings = await self.get_settings()
        uploads = await self.check_attachments(attachments)
        flow = send_message_flow(
            settings.account_id, conversation_id, content, attachments=uploads, **options
        )
        message = await arun_flow(flow, self.send)
        if wait_for is None:
            return message
        return await self.wait_for_delivery(conversation_id, message, wait_for, timeout=delivery_timeout)

    async def check_attachments(self, attachments: Sequence[AttachmentSource] | None) -> tuple[Upload, ...]:
        """:meth:`DotoHook.check_attachments`; each file looked at in a worker thread."""
        settings = await self.get_settings()
        found = await asyncio.to_thread(uploads_of, attachments) if attachments else []
        return check_uploads(found, settings.max_upload_bytes)

    async def send_message_once(
        self,
        conversation_id: int | str,
        content: str,
        *,
        key: str,
        look_back_since: api.Timestamp | None = None,
        attachments: Sequence[AttachmentSource] | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        **options: Any,
    ) -> tuple[Message, bool]:
        """The async twin of :meth:`DotoHook.send_message_once` (the same flow, the same wait)."""
        check_wait_for(wait_for, delivery_timeout)
        settings = await self.get_settings()
        uploads = await self.check_attachments(attachments)
        reading = found_reading(settings)
        if look_back_since is not None and reading.known is None:
            check_send_once(conversation_id, content, look_back_since=look_back_since, **options)
            reading = await self.reading_for(conversation_id)  # probed once, kept for what follows
        flow = send_once_flow(
            settings.account_id,
            conversation_id,
            content,
            key=key,
            look_back_since=look_back_since,
            flavor=reading,
            attachments=uploads,
            **options,
        )
        message, already_delivered = await arun_flow(flow, self.send)
        if wait_for is not None:
            message = await self.wait_for_delivery(
                conversation_id, message, wait_for, timeout=delivery_timeout
            )
        return message, already_delivered

    async def wait_for_delivery(
        self,
        conversation_id: int | str,
        message: Message,
        wait_for: str,
        *,
        timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Message:
        """The async twin of :meth:`DotoHook.wait_for_delivery` (the same reads, the same decisions)."""
        cid = to_id(conversation_id, name="conversation_id")
        return await self.await_delivery(
            DeliveryWait(cid, wait_for, timeout, time.monotonic(), poll_interval), message
        )

    async def await_delivery(
        self, wait: DeliveryWait, message: Message, *, clock: Callable[[], float] = time.monotonic
    ) -> Message:
        """Read ``message`` back, one request a read, until ``wait`` says it is reached (or raises).

        ``clock`` is the one ``wait.started`` was read from: the trigger's wait began in a worker,
        so it counts in wall-clock seconds (``time.time``).
        """
        settings = await self.get_settings()
        reading = await self.reading_for(wait.conversation_id)
        while True:
            flow = read_back_flow(settings.account_id, wait.conversation_id, message, reading)
            message = await arun_flow(flow, self.send)
            pause = wait.after_read(message, clock())
            if pause is None:
                return message
            await asyncio.sleep(pause)

    async def send_messages(
        self,
        items: Iterable[api.BatchItem],
        *,
        delivery_keys: Callable[[int], str] | None = None,
        look_back_since: api.Timestamp | None = None,
        max_in_flight: int = 10,
        message_type: str = "outgoing",
        private: bool = False,
        content_type: str = "text",
        content_attributes: Mapping[str, Any] | None = None,
        check_reply_window: bool = False,
        template: Mapping[str, Any] | None = None,
        fallback_template: Mapping[str, Any] | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        attachments: Sequence[AttachmentSource] | None = None,
        conversations: Mapping[int, Conversation] | None = None,
    ) -> list[api.BatchResult]:
        """Send each item's message, at most ``max_in_flight`` at a time; one result per item, in order.

        With ``delivery_keys`` (conversation id to key, e.g. :func:`api.delivery_key` of the task
        instance) each message is sent once per key (:func:`send_once_flow`); with
        ``look_back_since`` too (a retried task: when its run started) a message an earlier try
        delivered is found and not sent again. Each request is retried with the hook's retry
        policy (rate limits with their wait, POSTs only when nothing was created). One item's
        failure never raises: it becomes a ``failed`` :class:`~api.BatchResult` with the error's
        text; an error that is not a :class:`DotoError` (a bug) is kept on it too, for
        :func:`api.check_batch` to raise whatever failures it tolerates. With ``check_reply_window``
        each public outgoing message not delivered yet first reads its conversation (one GET) and
        is not sent when the window is closed: a failed result with ``DotoReplyWindowError``;
        ``conversations`` (id to the :class:`Conversation` a listing gave) decide it without that
        GET for the conversations they hold.
        ``template`` goes with every message; ``fallback_template`` is sent, per conversation, only
        where the window is closed (each such conversation read once; :meth:`DotoHook.send_message`).
        ``wait_for``: once every message is sent, each one sent or found is read back
        (:meth:`_wait_all`) until its status reaches that; one its channel marked ``failed``, or
        that did not reach it within ``delivery_timeout`` seconds of the sends' end, becomes a
        failed result with ``DotoDeliveryError`` (the server's ``external_error`` in its text).
        Every result carries its message's last status read (``message_status``).
        ``attachments`` (as for :meth:`send_message`) go with every message: checked once
        (:meth:`check_attachments`), so a refused file raises :class:`DotoUploadError` and nothing is
        sent to any conversation; each message's upload is streamed from the sources again, and its
        delivery key rides in the form, so a retry finds an attachment message too.
        Everything is checked before the first request.
        """
        validate_max_in_flight(max_in_flight)
        check_wait_for(wait_for, delivery_timeout)
        check_template_use(template, fallback_template, message_type, private)
        for name, value in (("template", template), ("fallback_template", fallback_template)):
            if value is not None:
                check_template(value, name=name)
        batch = check_items(
            items,
            message_type=message_type,
            private=private,
            content_type=content_type,
            content_attributes=content_attributes,
        )
        if look_back_since is not None:
            api.to_timestamp(look_back_since, name="look_back_since")
        check_attachments_alone(attachments, template, fallback_template)
        # Once for the whole batch, before any request (an empty batch's files are checked too).
        uploads = await self.check_attachments(attachments) if attachments else ()
        if not batch:
            return []
        settings = await self.get_settings()
        options = {
            "message_type": message_type,
            "private": private,
            "content_type": content_type,
            "content_attributes": content_attributes,
            "check_reply_window": check_reply_window,
            "template": template,
            "fallback_template": fallback_template,
            "attachments": uploads,
        }
        results: list[api.BatchResult | None] = [None] * len(batch)
        pending = iter(enumerate(batch))

        async def worker() -> None:
            # Workers share one iterator: each takes the next item when its last one is done.
            for index, item in pending:
                key = delivery_keys(item.conversation_id) if delivery_keys is not None else None
                looks_back = key is not None and look_back_since is not None
                try:
                    flow = batch_item_flow(
                        settings.account_id,
                        item,
                        key=key,
                        look_back_since=look_back_since if looks_back else None,
                        flavor=await self.reading_for(item.conversation_id) if looks_back else "auto",
                        conversation=(conversations or {}).get(item.conversation_id),
                        **options,
                    )
                    results[index] = await arun_flow(flow, self.send)
                except Exception as err:  # one conversation's failure is its result (a bug's: raised later)
                    results[index] = failed_result(item, err)

        await asyncio.gather(*(worker() for _ in range(min(max_in_flight, len(batch)))))
        done = [r for r in results if r is not None]
        if wait_for is not None:
            waits = {
                index: DeliveryWait(
                    result.conversation_id, wait_for, delivery_timeout, time.monotonic(), poll_interval
                )
                for index, result in enumerate(done)
                if result.message is not None
            }
            await self._wait_all(batch, done, waits, max_in_flight)
        return done

    async def _wait_all(
        self,
        batch: list[api.BatchItem],
        results: list[api.BatchResult],
        waits: dict[int, DeliveryWait],
        max_in_flight: int,
    ) -> None:
        """Read the batch's messages back in rounds until each reached its status (or failed): one
        request per conversation a round, at most ``max_in_flight`` at once, the next round when
        the soonest of them is due. Each outcome replaces that item's result in ``results``."""
        settings = await self.get_settings()
        slots = asyncio.Semaphore(max_in_flight)
        pauses: dict[int, float] = {}

        async def read(index: int) -> None:
            result, wait = results[index], waits[index]
            assert result.message is not None  # only results with a message are waited on
            async with slots:
                try:
                    reading = await self.reading_for(wait.conversation_id)
                    flow = read_back_flow(settings.account_id, wait.conversation_id, result.message, reading)
                    message = await arun_flow(flow, self.send)
                    pause = wait.after_read(message, time.monotonic())
                except Exception as err:  # as a send's failure: that conversation's result
                    results[index] = failed_result(batch[index], err)
                    del waits[index]
                    return
            results[index] = waited_result(result, message)
            if pause is None:
                del waits[index]
            else:
                pauses[index] = pause

        while waits:
            pauses.clear()
            await asyncio.gather(*(read(index) for index in list(waits)))
            if waits:
                await asyncio.sleep(min(pauses.values()))

    async def delete_message(
        self, conversation_id: int | str, message_id: int | str, *, missing_ok: bool = False
    ) -> bool:
        settings = await self.get_settings()
        flow = delete_message_flow(settings.account_id, conversation_id, message_id, missing_ok=missing_ok)
        return await arun_flow(flow, self.send)

    async def poll(self, watch: api.MessageWatch, conversation_id: int | str) -> list[Message] | None:
        settings = await self.get_settings()
        flow = watch.poll_flow(settings.account_id, conversation_id, found_reading(settings))
        batch = await arun_flow(flow, self.send)
        keep_reading(settings, watch.reading)  # the watch's own state may have known it already
        return batch

    async def poll_account(self, watch: AccountWatch) -> list[Message] | None:
        """The async twin of :meth:`DotoHook.poll_account`."""
        settings = await self.get_settings()
        flow = watch.poll_flow(settings.account_id, dt.datetime.now(dt.UTC), found_reading(settings))
        batch = await arun_flow(flow, self.send)
        keep_reading(settings, watch.reading)
        return batch

    async def reading_for(self, conversation_id: int | str) -> api.ServerReading:
        """The async twin of :meth:`DotoHook.reading_for` (the same probe, the same memory)."""
        settings = await self.get_settings()
        reading = found_reading(settings)
        if reading.known is None:
            reading = await arun_flow(resolve_flow(reading, settings.account_id, conversation_id), self.send)
        return keep_reading(settings, reading)

    async def test_connection(self) -> tuple[bool, str]:
        """The async twin of :meth:`DotoHook.test_connection` (one attempt per request)."""
        try:
            settings = await self.get_settings()
            return await arun_flow(check_connection_flow(settings), self._send_once)
        except DotoError as err:
            return False, str(err)

    async def download_attachment(
        self, attachment: api.Attachment | str, out: BinaryIO, *, chunk_size: int = CHUNK_SIZE
    ) -> int:
        """The async twin of :meth:`DotoHook.download_attachment`: the same hops (``download_flow``),
        the token only on a hop to the Base URL's origin, the body streamed ``chunk_size`` at a time
        (``out`` is written synchronously). Cookies are neither kept nor sent."""
        import aiohttp

        settings = await self.get_settings()
        timeout = self._timeout if self._timeout is not None else settings.timeout
        url = attachment if isinstance(attachment, str) else check_downloadable(attachment)
        flow = download_flow(url, settings.base_url)
        hop = next(flow)
        # The loop's pooled connections, without the shared cookie jar (no cookie crosses origins).
        async with aiohttp.ClientSession(
            connector=shared_session().connector, connector_owner=False, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            while True:
                proxy, proxy_auth = self._proxy if hop.with_token else env_proxy(hop.url)
                with map_download_errors(hop, aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        hop.url,
                        headers=headers(settings.token) if hop.with_token else None,
                        proxy=proxy,
                        proxy_auth=proxy_auth,
                        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
                        allow_redirects=False,
                    ) as response:
                        try:
                            hop = flow.send((response.status, response.headers.get("location")))
                            continue  # a redirect: the next hop
                        except StopIteration:  # the file: stream it
                            pass
                        written = 0
                        async for chunk in response.content.iter_chunked(chunk_size):
                            out.write(chunk)
                            written += len(chunk)
                        return written

    async def send(self, request: DotoRequest) -> DotoResponse:
        """:meth:`DotoHook.send`: each attempt at the connection's pace (its process-wide pacer)."""
        if self.retry_policy.attempts <= 1:
            # What tenacity does with one attempt, without its per-call cost (triggers poll this way).
            return raise_if_retryable(request, await self._paced_once(request))
        import tenacity

        retrying = tenacity.AsyncRetrying(**retry_settings(request, self.retry_policy, log))
        async for attempt in retrying:
            with attempt:
                response = raise_if_retryable(request, await self._paced_once(request))
        return response

    async def _paced_once(self, request: DotoRequest) -> DotoResponse:
        """One exchange at the pace: a 429 is waited out with every request of the connection."""
        pacer = pacer_for(await self.get_settings())
        if pacer is None:
            return await self._send_once(request)
        return await asend_paced(pacer, request, self._send_once, resend=self.retry_policy.attempts > 1)

    async def _send_once(self, request: DotoRequest) -> DotoResponse:
        """One HTTP exchange; aiohttp's exceptions become typed errors (``AIOHTTP_ERRORS``)."""
        import aiohttp

        settings = await self.get_settings()
        timeout = self._timeout if self._timeout is not None else settings.timeout
        exchange = Exchange(request, settings.base_url, timeout, proxied=self._proxy[0] is not None)
        form = request.multipart
        sent_headers = headers(settings.token)
        if form is not None:  # attachments: streamed with a Content-Length (hooks/_uploads.py)
            sent_headers |= {"Content-Type": form.content_type, "Content-Length": str(form.length)}
        async with (
            amap_errors(AIOHTTP_ERRORS, exchange),
            shared_session().request(
                request.method,
                request.url(settings.base_url),
                params=request.query(),
                json=request.json,
                data=None if form is None else aiter_body(form),
                headers=sent_headers,
                proxy=self._proxy[0],
                proxy_auth=self._proxy[1],
                # connect covers waiting for a pooled connection too; sock_read is per read, like httpx's.
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
                allow_redirects=False,  # a redirect must never carry the token to another host
            ) as response,
        ):
            body = await response.read()
        return DotoResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            base_url=settings.base_url,
            received_at=dt.datetime.now(dt.UTC),  # the clock is read here, not in the core
        )

    async def aiter_messages(
        self,
        conversation_id: int | str,
        *,
        after: api.Timestamp | None = None,
        before: api.Timestamp | None = None,
    ) -> AsyncIterator[Message]:
        """The async twin of :meth:`DotoHook.iter_messages` (the same pager, one page in memory)."""
        settings = await self.get_settings()
        pager = MessagePager(
            settings.account_id, conversation_id, before=before, after=after, flavor=found_reading(settings)
        )
        while not pager.done:
            page = await arun_flow(pager.next_page_flow(), self.send)
            keep_reading(settings, pager.reading)
            for message in page:
                yield message
