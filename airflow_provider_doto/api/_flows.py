"""Flows: generators that yield requests and are sent the responses; the transports drive them.

:func:`run_flow` and :func:`arun_flow` are the only drivers (the sync hook's ``send`` and the async
hook's). Here too are the flows of one purpose: send, delete (telling a missing message from a
missing conversation) and the connection check. Listing lives in ``_listing``, the watch's poll in
``_watch``, duplicate-safe sending in ``_delivery``. Rule: a flow never does I/O; it yields a
:class:`DotoRequest` and reads the :class:`DotoResponse` it is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, TypeAlias

from airflow_provider_doto.api._conversations import Conversation, get_conversation_flow
from airflow_provider_doto.api._http import (
    PROFILE_PATH,
    DotoRequest,
    DotoResponse,
    delete_request,
    error_for_status,
    is_doto_not_found,
    list_request,
    parse_json,
    profile_request,
    send_request,
)
from airflow_provider_doto.api._messages import Message, parse_message_list, parse_single_message
from airflow_provider_doto.api._settings import DotoSettings
from airflow_provider_doto.api._templates import check_template, check_template_use
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.api._window import check_listed, needs_reply_window, reply_window_error
from airflow_provider_doto.exceptions import DotoError, DotoNotFoundError

# An ``after`` no message reaches, read as an id (Chatwoot) or as a timestamp (Doto's reference).
AFTER_EVERYTHING = 2**31 - 1

Flow: TypeAlias = Generator[DotoRequest, DotoResponse, Any]


def run_flow(flow: Flow, send: Callable[[DotoRequest], DotoResponse]) -> Any:
    """Drive a flow with a synchronous ``send``; the async transport has the same five lines."""
    try:
        request = next(flow)
        while True:
            request = flow.send(send(request))
    except StopIteration as done:
        return done.value


async def arun_flow(flow: Flow, send: Callable[[DotoRequest], Awaitable[DotoResponse]]) -> Any:
    """:func:`run_flow` for an async ``send``."""
    try:
        request = next(flow)
        while True:
            request = flow.send(await send(request))
    except StopIteration as done:
        return done.value


def send_message_flow(
    account_id: int,
    conversation_id: int | str,
    content: str,
    *,
    check_reply_window: bool = False,
    template: Mapping[str, Any] | None = None,
    fallback_template: Mapping[str, Any] | None = None,
    conversation: Conversation | None = None,
    **options: Any,
) -> Generator[DotoRequest, DotoResponse, Message]:
    """Post a message. With ``check_reply_window`` a public outgoing message first reads its
    conversation and is not sent when the channel's window is closed (:mod:`api._window`).
    ``conversation``: the caller already has it (from the list), so its ``can_reply`` decides and
    the window costs no request; it must be ``conversation_id``'s.

    ``template`` (Chatwoot's ``template_params``, :mod:`api._templates`) is always sent with the
    message, so no window applies. ``fallback_template`` implies the window check and is sent only
    when the window is closed: inside it the free text goes, outside it the template (the same
    ``content`` either way, so a duplicate-safe retry recognises whichever was sent).
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    check_listed(conversation, conversation_id)
    check_template_use(
        template, fallback_template, options.get("message_type", "outgoing"), options.get("private", False)
    )
    for name, value in (("template", template), ("fallback_template", fallback_template)):
        if value is not None:
            check_template(value, name=name)  # a wrong field named by its own argument
    # Both requests are built, so checked, before any request.
    request = send_request(account_id, conversation_id, content, template_params=template, **options)
    fallback = None
    if fallback_template is not None:
        fallback = send_request(
            account_id, conversation_id, content, template_params=fallback_template, **options
        )
    if template is None and (check_reply_window or fallback is not None):
        message_type = options.get("message_type", "outgoing")
        if needs_reply_window(message_type, bool(options.get("private", False))):
            if conversation is None:
                conversation = yield from get_conversation_flow(account_id, conversation_id)
            error = reply_window_error(conversation)
            if error is not None:
                if fallback is None:
                    raise error
                request = fallback
    return parse_single_message(request, (yield request))


def delete_message_flow(
    account_id: int, conversation_id: int | str, message_id: int | str, *, missing_ok: bool = False
) -> Generator[DotoRequest, DotoResponse, bool]:
    """True if deleted now; False if it was already gone and ``missing_ok``.

    A 404 on DELETE does not say whether the message or the conversation is missing, so with
    ``missing_ok`` one cheap list request (``after`` beyond every id and timestamp: an empty page
    for an existing conversation under either server's reading) tells them apart; a missing
    conversation is always an error. Chatwoot deletes softly: a second DELETE answers 200.
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    request = delete_request(account_id, conversation_id, to_id(message_id, name="message_id"))
    response = yield request
    error = error_for_status(request, response)
    if isinstance(error, DotoNotFoundError) and missing_ok:
        check = list_request(account_id, conversation_id, after=AFTER_EVERYTHING)
        check_response = yield check
        check_error = error_for_status(check, check_response)
        if isinstance(check_error, DotoNotFoundError) and is_doto_not_found(check_error.doto_error):
            raise DotoNotFoundError(
                f"Doto conversation {conversation_id} does not exist in account {account_id}"
                + (f" at {response.base_url}" if response.base_url else "")
                + f" ({request.describe()} and {check.describe()} both answered HTTP 404)",
                method=request.method,
                path=request.path,
                status=404,
                doto_error=error.doto_error,
            )
        parse_message_list(check, check_response)  # any other failure is raised as it is
        return False
    if error is not None:
        raise error
    if response.body.strip():
        # A 2xx that is not JSON (an HTML login page, a proxy) is not Doto's answer: nothing was deleted.
        parse_json(request, response)
    return True


def check_connection_flow(settings: DotoSettings) -> Generator[DotoRequest, DotoResponse, tuple[bool, str]]:
    """``(ok, text)`` for a connection test: does the token work, and does it belong to the account?

    One ``GET /api/v1/profile``: its ``accounts`` list shows whether the token's user is a member of
    the connection's account. A 401 names a wrong token or an agent bot's token (bots may only send),
    a 404 that is not Doto's own means no Doto API at the Base URL. A Doto server without the
    profile endpoint (its own 404) gets the older probe: a list request that is empty or Doto's 404.
    The text never contains the token.
    """
    where = f"Doto at {settings.base_url}"
    request = profile_request()
    try:
        response = yield request
        error = error_for_status(request, response)
        if isinstance(error, DotoNotFoundError) and is_doto_not_found(error.doto_error):
            return (yield from _check_messages_probe(settings))
        data = parse_json(request, response)
    except DotoError as err:
        return False, str(err)
    accounts = data.get("accounts") if isinstance(data, Mapping) else None
    if not isinstance(accounts, list):
        return False, (
            f"{where} answered {request.describe()} without an 'accounts' list: no Doto API at "
            f"{settings.base_url}? Check the Base URL (its path)."
        )
    name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else None
    user = name or f"user {data.get('id')!r}"
    members = [a for a in accounts if isinstance(a, Mapping)]
    for account in members:
        if str(account.get("id")) == str(settings.account_id):
            role = account.get("role")
            return True, (
                f"Connected to {where} as {user}, account {settings.account_id}"
                + (f" ({role})" if isinstance(role, str) and role else "")
                + "."
            )
    listed = ", ".join(
        f"{a.get('id')}" + (f" ({a['name']})" if isinstance(a.get("name"), str) else "") for a in members
    )
    return False, (
        f"{where}: the API Token ({user}) does not belong to account {settings.account_id}; "
        + (f"it has access to account(s) {listed}." if listed else "it has access to no account.")
        + " Check the connection's Account ID."
    )


def _check_messages_probe(settings: DotoSettings) -> Generator[DotoRequest, DotoResponse, tuple[bool, str]]:
    """The fallback probe: the newest second of a conversation that need not exist."""
    request = list_request(settings.account_id, 1, after=AFTER_EVERYTHING)
    response = yield request
    error = error_for_status(request, response)
    if error is None:
        parse_message_list(request, response)  # a Base URL pointing at some other web server can answer 200
    elif not (isinstance(error, DotoNotFoundError) and is_doto_not_found(error.doto_error)):
        raise error
    # Doto's own 404 here means "no such conversation": the token and account were accepted.
    return True, (
        f"Connected to Doto at {settings.base_url} (account {settings.account_id}; this server has "
        f"no {PROFILE_PATH}, so whether the token belongs to the account was not checked)."
    )
