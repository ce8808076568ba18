"""The Messages API routes, as a FastAPI app over the emulator's Store."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_doto.testing.store import Invalid, NotFound, Store

MESSAGES_PATH = "/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"
NOT_FOUND = "Resource could not be found"


def error(status: int, message: str) -> JSONResponse:
    """A Chatwoot-shaped error response."""
    return JSONResponse({"error": message}, status_code=status)


def _path_int(value: str) -> int:
    # Chatwoot looks ids up as given, so a non-numeric id is simply not found.
    try:
        return int(value)
    except ValueError:
        raise NotFound(value) from None


def _timestamp(name: str, value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise Invalid(f"{name} must be a Unix timestamp in seconds, not {value!r}") from None


def build_app(store: Store) -> FastAPI:
    """The three Messages API endpoints; auth and faults live in the ASGI layer outside this app."""
    app = FastAPI(title="Doto Messages API emulator", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, NOT_FOUND)

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, NOT_FOUND if exc.status_code == 404 else str(exc.detail))

    @app.get(MESSAGES_PATH)
    async def list_messages(
        account_id: str, conversation_id: str, before: str | None = None, after: str | None = None
    ) -> JSONResponse:
        page = store.list_page(
            _path_int(account_id),
            _path_int(conversation_id),
            after=_timestamp("after", after),
            before=_timestamp("before", before),
        )
        return JSONResponse(page)

    @app.post(MESSAGES_PATH)
    async def create_message(account_id: str, conversation_id: str, request: Request) -> JSONResponse:
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            body = None  # the store answers 404 for a missing conversation first, else 422
        return JSONResponse(store.post(_path_int(account_id), _path_int(conversation_id), body))

    @app.delete(MESSAGES_PATH + "/{message_id}")
    async def delete_message(account_id: str, conversation_id: str, message_id: str) -> JSONResponse:
        deleted = store.delete(_path_int(account_id), _path_int(conversation_id), _path_int(message_id))
        return JSONResponse(deleted)

    return app
