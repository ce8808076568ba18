"""DotoAsyncHook: the async twin of DotoHook (httpx), for triggers and async notifiers.

Same flows, same errors, same retry policy as the sync hook; only the transport differs. The
connection is read with Airflow's async connection helpers, never the sync ``get_connection``
(which inside the triggerer only works through a bridge that deployments may turn off).
One ``httpx.AsyncClient`` is shared per event loop: a client costs an SSL context
(~0.85 MB, ~20 ms CPU), which 1,000 deferred sensors should not each pay.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from airflow_provider_doto import api
from airflow_provider_doto._retry import raise_if_retryable, retry_settings
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoTimeoutError,
)

if TYPE_CHECKING:
    import httpx

    from airflow_provider_doto.api import DotoRequest, DotoResponse, DotoSettings, Message

log = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The event loop's pooled client. It carries no token: that goes on each request."""
    import httpx

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            follow_redirects=False,  # a redirect must never carry the token to another host
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )
        _clients[loop] = client
    return client


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

    async def get_settings(self) -> DotoSettings:
        if self._settings is None:
            from airflow_provider_doto.hooks.doto import DotoHook

            try:
                from airflow.providers.common.compat.connection import (
                    get_async_connection,
                    get_async_extra_dejson,
                )

                conn = await get_async_connection(self.doto_conn_id, hook=DotoHook)
                extra = await get_async_extra_dejson(conn)
            except DotoError:
                raise
            except Exception as err:
                raise DotoConfigError(
                    f"Doto connection {self.doto_conn_id!r} could not be loaded: {err}"
                ) from None
            self._settings = api.DotoSettings.from_connection_fields(
                self.doto_conn_id,
                host=conn.host,
                password=conn.password,
                extra=extra,
                schema=conn.schema,
                port=conn.port,
            )
        return self._settings

    async def list_messages(
        self,
        conversation_id: int | str,
        *,
        before: api.Timestamp | None = None,
        after: api.Timestamp | None = None,
    ) -> list[Message]:
        settings = await self.get_settings()
        flow = api.list_messages_flow(
            settings.account_id,
            api.to_id(conversation_id, name="conversation_id"),
            before=None if before is None else api.to_timestamp(before, name="before"),
            after=None if after is None else api.to_timestamp(after, name="after"),
        )
        return await api.arun_flow(flow, self.send)

    async def send_message(self, conversation_id: int | str, content: str, **options: Any) -> Message:
        settings = await self.get_settings()
        flow = api.send_message_flow(
            settings.account_id, api.to_id(conversation_id, name="conversation_id"), content, **options
        )
        return await api.arun_flow(flow, self.send)

    async def delete_message(
        self, conversation_id: int | str, message_id: int | str, *, missing_ok: bool = False
    ) -> bool:
        settings = await self.get_settings()
        flow = api.delete_message_flow(
            settings.account_id,
            api.to_id(conversation_id, name="conversation_id"),
            api.to_id(message_id, name="message_id"),
            missing_ok=missing_ok,
        )
        return await api.arun_flow(flow, self.send)

    async def poll(self, watch: api.MessageWatch, conversation_id: int | str) -> list[Message] | None:
        settings = await self.get_settings()
        flow = watch.poll_flow(settings.account_id, api.to_id(conversation_id, name="conversation_id"))
        return await api.arun_flow(flow, self.send)

    async def send(self, request: DotoRequest) -> DotoResponse:
        import tenacity

        retrying = tenacity.AsyncRetrying(**retry_settings(request, self.retry_policy, log))
        async for attempt in retrying:
            with attempt:
                response = raise_if_retryable(request, await self._send_once(request))
        return response

    async def _send_once(self, request: DotoRequest) -> DotoResponse:
        """One HTTP exchange; httpx's exceptions become the provider's typed transport errors."""
        import httpx

        settings = await self.get_settings()
        timeout = self._timeout if self._timeout is not None else settings.timeout
        where = {"method": request.method, "path": request.path}
        try:
            response = await shared_client().request(
                request.method,
                request.url(settings.base_url),
                params=dict(request.params) or None,
                json=request.json,
                headers=api.headers(settings.token),
                timeout=timeout,
            )
        except httpx.ConnectTimeout:
            raise DotoConnectError(
                f"Doto {request.describe()}: could not connect within {timeout:g} s", **where
            ) from None
        except httpx.ConnectError:
            raise DotoConnectError(
                f"Doto {request.describe()}: could not connect to {settings.base_url}", **where
            ) from None
        except httpx.TimeoutException:
            raise DotoTimeoutError(
                f"Doto {request.describe()}: no answer within {timeout:g} s", **where
            ) from None
        except httpx.TransportError as err:
            raise DotoConnectionLostError(
                f"Doto {request.describe()}: the connection broke before an answer arrived ({type(err).__name__})",
                **where,
            ) from None
        return api.DotoResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content,
        )
