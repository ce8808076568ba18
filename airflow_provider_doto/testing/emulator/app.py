"""The Messages API routes, as a FastAPI app over the emulator's Store."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_doto.testing.emulator.attachments import REDIRECT_PREFIX
from airflow_provider_doto.testing.emulator.messages import Forbidden, Invalid, NotFound
from airflow_provider_doto.testing.emulator.middleware import BOT_SCOPE_KEY, rails_not_found
from airflow_provider_doto.testing.emulator.store import Store

CONVERSATIONS_PATH = "/api/v1/accounts/{account_id}/conversations"
CONVERSATION_PATH = CONVERSATIONS_PATH + "/{conversation_id}"
MESSAGES_PATH = CONVERSATION_PATH + "/messages"
PROFILE_PATH = "/api/v1/profile"
NOT_FOUND = "Resource could not be found"


def error(status: int, message: str) -> JSONResponse:
    """A Chatwoot-shaped error response."""
    return JSONResponse({"error": message}, status_code=status)


def _path_int(value: str) -> int:
    # Chatwoot looks ids up as given, so a non-numeric id is simply not found.
    try:
        return int(value)
    except ValueError as exc:
        raise NotFound(value) from exc


def _timestamp(name: str, value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise Invalid(f"{name} must be a Unix timestamp in seconds, not {value!r}") from exc


def _params(request: Request) -> dict[str, list[str]]:
    """Every query param with all its values (``labels[]`` repeats)."""
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


async def _form_body(request: Request) -> tuple[dict[str, Any], list[tuple[str, bytes, str | None]]]:
    """A multipart create as Chatwoot's MessageBuilder reads it: text fields (``private`` cast as
    Rails casts a boolean, ``content_attributes`` parsed from JSON text, {} when it is not JSON)
    and the ``attachments[]`` files."""
    form = await request.form(max_files=1000, max_fields=1000)
    body: dict[str, Any] = {}
    files: list[tuple[str, bytes, str | None]] = []
    for name, value in form.multi_items():
        if isinstance(value, str):
            body[name] = value
        elif name == "attachments[]":
            files.append((value.filename or "file", await value.read(), value.content_type))
    if "private" in body:
        body["private"] = str(body["private"]).strip().lower() in ("true", "1", "t", "on", "yes")
    attributes = body.get("content_attributes")
    if isinstance(attributes, str):
        try:
            parsed = json.loads(attributes)
        except ValueError:
            parsed = {}
        body["content_attributes"] = parsed if isinstance(parsed, dict) else {}
    await form.close()
    return body, files


def build_app(store: Store) -> FastAPI:
    """The Messages API endpoints, profile and the account's conversations; auth and faults live outside.

    The store's ``flavor`` picks, per request, Doto's reference semantics or Chatwoot's.
    """
    app = FastAPI(title="Doto Messages API emulator", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, NOT_FOUND)

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return error(403, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405):  # no route matched: Rails' own 404, never Chatwoot's
            body, content_type = rails_not_found(request.headers.get("accept"))
            return Response(body, status_code=404, media_type=content_type.decode())
        return error(exc.status_code, str(exc.detail))

    @app.get(PROFILE_PATH)
    async def profile() -> JSONResponse:
        return JSONResponse(store.profile())

    @app.get(CONVERSATIONS_PATH)
    async def list_conversations(account_id: str, request: Request) -> JSONResponse:
        return JSONResponse(store.list_conversations(_path_int(account_id), _params(request)))

    @app.get(CONVERSATIONS_PATH + "/meta")
    async def conversation_meta(account_id: str, request: Request) -> JSONResponse:
        return JSONResponse(store.conversation_meta(_path_int(account_id), _params(request)))

    @app.get(CONVERSATION_PATH)
    async def show_conversation(account_id: str, conversation_id: str) -> JSONResponse:
        return JSONResponse(store.show_conversation(_path_int(account_id), _path_int(conversation_id)))

    @app.post(CONVERSATION_PATH + "/toggle_status")
    async def toggle_status(account_id: str, conversation_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(store.toggle_status(_path_int(account_id), _path_int(conversation_id), body))

    @app.post(CONVERSATION_PATH + "/toggle_priority")
    async def toggle_priority(account_id: str, conversation_id: str, request: Request) -> Response:
        body = await _json_body(request)
        store.toggle_priority(_path_int(account_id), _path_int(conversation_id), body)
        return Response(status_code=200)  # Chatwoot: head :ok

    @app.post(CONVERSATION_PATH + "/labels")
    async def set_labels(account_id: str, conversation_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(store.set_labels(_path_int(account_id), _path_int(conversation_id), body))

    @app.get(MESSAGES_PATH)
    async def list_messages(
        request: Request,
        account_id: str,
        conversation_id: str,
        before: str | None = None,
        after: str | None = None,
    ) -> JSONResponse:
        if store.flavor == "chatwoot":
            params = dict(request.query_params)
            return JSONResponse(
                store.list_chatwoot(_path_int(account_id), _path_int(conversation_id), params)
            )
        page = store.list_page(
            _path_int(account_id),
            _path_int(conversation_id),
            after=_timestamp("after", after),
            before=_timestamp("before", before),
        )
        return JSONResponse(page)

    @app.post(MESSAGES_PATH)
    async def create_message(account_id: str, conversation_id: str, request: Request) -> JSONResponse:
        files: list[tuple[str, bytes, str | None]] = []
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            body, files = await _form_body(request)
        else:
            try:
                body = json.loads(await request.body())
            except ValueError:
                body = None  # the store answers 404 for a missing conversation first, else 422
        bot = bool(request.scope.get(BOT_SCOPE_KEY))
        account, conversation = _path_int(account_id), _path_int(conversation_id)
        return JSONResponse(store.post(account, conversation, body, bot=bot, files=files))

    @app.delete(MESSAGES_PATH + "/{message_id}")
    async def delete_message(account_id: str, conversation_id: str, message_id: str) -> JSONResponse:
        deleted = store.delete(_path_int(account_id), _path_int(conversation_id), _path_int(message_id))
        return JSONResponse(deleted)

    # Rails routes PUT to ``update`` as well as PATCH.
    @app.api_route(MESSAGES_PATH + "/{message_id}", methods=["PATCH", "PUT"])
    async def update_message(
        account_id: str, conversation_id: str, message_id: str, request: Request
    ) -> JSONResponse:
        body = await _json_body(request)
        account, conversation = _path_int(account_id), _path_int(conversation_id)
        return JSONResponse(store.update_status(account, conversation, _path_int(message_id), body))

    @app.get(REDIRECT_PREFIX + "{key}/{filename:path}")
    async def attachment_redirect(key: str, filename: str) -> Response:
        # Active Storage's redirect controller: a signed id, no token; 302 to the storage service.
        return RedirectResponse(store.blob_location(key), status_code=302)

    return app
