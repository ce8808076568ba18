"""Attachments: their bytes, their JSON, Active Storage's redirect, and the "storage" listener.

Chatwoot renders a message's attachment with a ``data_url`` on its own host (Active Storage's
``/rails/active_storage/blobs/redirect/<signed id>/<file name>``, no token needed: the id is
signed) that answers 302 to wherever the bytes live (S3, GCS, a CDN: another origin). The emulator
does the same: the API listener answers the redirect, a second listener on another port (another
origin) serves the bytes and records the headers of every request that reached it, so a test can
prove the API token never got there.
"""

from __future__ import annotations

import mimetypes
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_doto.testing.emulator.recorder import RecordedRequest, RequestLog, mask_headers

REDIRECT_PREFIX = "/rails/active_storage/blobs/redirect/"
STORAGE_PREFIX = "/blobs/"
CHUNK = 64 * 1024  # the storage listener sends the bytes in pieces, as a real one streams them
# Chatwoot's upload limits (app/models/attachment.rb), kept here apart from the provider's own copy
# so the emulator checks the provider, not itself: 40 MB a file (MAXIMUM_FILE_UPLOAD_SIZE) and
# ACCEPTABLE_FILE_TYPES plus any image, audio or video; enforced for web-widget inboxes only.
MAX_UPLOAD_BYTES = 40 * 1024 * 1024
ACCEPTABLE_FILE_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "text/rtf",
        "application/json",
        "application/pdf",
        "application/zip",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/x-tar",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/rtf",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Blob:
    """One stored file: what Active Storage keeps of an upload."""

    key: str
    filename: str
    data: bytes
    content_type: str


def file_type(content_type: str) -> str:
    """Chatwoot's ``file_type`` of an upload's content type (``Attachment#set_file_type``)."""
    major = content_type.split("/", 1)[0].lower()
    return major if major in ("image", "audio", "video") else "file"


def upload_refusal(content_type: str | None, size: int, max_bytes: int) -> str | None:
    """Chatwoot's ``Attachment#acceptable_file`` error for an upload, or None when it is accepted."""
    if size > max_bytes:
        return "File size is too big"
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not (kind.split("/", 1)[0] in ("image", "audio", "video") or kind in ACCEPTABLE_FILE_TYPES):
        return "File type not supported"
    return None


def extension(filename: str) -> str | None:
    """The file name's extension without the dot (Active Storage's ``extension_without_delimiter``)."""
    stem, dot, ext = filename.rpartition(".")
    return ext if dot and stem and ext else None


class BlobStore:
    """The stored files by key, thread-safe; cleared by the emulator's ``reset()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, Blob] = {}

    def add(self, filename: str, data: bytes, content_type: str | None = None) -> Blob:
        if not isinstance(filename, str) or not filename:
            raise ValueError("an attachment needs a non-empty file name")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("an attachment's content must be bytes")
        kind = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        blob = Blob(secrets.token_urlsafe(16), filename, bytes(data), kind)
        with self._lock:
            self._blobs[blob.key] = blob
        return blob

    def get(self, key: str) -> Blob | None:
        with self._lock:
            return self._blobs.get(key)

    def clear(self) -> None:
        with self._lock:
            self._blobs.clear()


def attachment_json(
    attachment_id: int, message_id: int, account_id: int, blob: Blob, api_url: str
) -> dict[str, Any]:
    """Chatwoot's ``Attachment#push_event_data`` for a file: what a message's JSON lists."""
    data_url = f"{api_url}{REDIRECT_PREFIX}{blob.key}/{quote(blob.filename, safe='')}"
    kind = file_type(blob.content_type)
    return {
        "id": attachment_id,
        "message_id": message_id,
        "file_type": kind,
        "account_id": account_id,
        "extension": extension(blob.filename),
        "data_url": data_url,
        "thumb_url": data_url if kind == "image" else "",
        "file_size": len(blob.data),
        "width": None,
        "height": None,
    }


def redirect_key(path: str) -> str | None:
    """The blob key of an Active Storage redirect path, or None if ``path`` is not one."""
    if not path.startswith(REDIRECT_PREFIX):
        return None
    key, _, name = path[len(REDIRECT_PREFIX) :].partition("/")
    return key if key and name else None


def storage_location(storage_url: str, blob: Blob) -> str:
    """Where the redirect sends a client: the blob on the storage listener (another origin)."""
    return f"{storage_url}{STORAGE_PREFIX}{blob.key}/{quote(blob.filename, safe='')}"


class StorageApp:
    """The storage listener: ``GET /blobs/<key>/<name>`` answers the bytes, anything else 404.

    Every request is recorded (headers masked as the API's log masks them: a token that arrived
    shows as ``***``) before it is answered, so ``requests`` lists exactly what reached storage.
    """

    def __init__(self, blobs: BlobStore, token: str, maxlen: int | None = 10_000) -> None:
        self.blobs = blobs
        self.token = token
        self.log = RequestLog(maxlen)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.log.append(
            RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query={},
                json=None,
                headers=mask_headers(headers, self.token),
                authorized=headers.get("api_access_token") == self.token,
            )
        )
        blob = self._blob(scope["method"], scope["path"])
        if blob is None:
            await send(
                {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", blob.content_type.encode("latin-1")),
                    (b"content-length", str(len(blob.data)).encode()),
                ],
            }
        )
        body = b"" if scope["method"] == "HEAD" else blob.data
        for start in range(0, len(body), CHUNK):
            await send({"type": "http.response.body", "body": body[start : start + CHUNK], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _blob(self, method: str, path: str) -> Blob | None:
        if method not in ("GET", "HEAD") or not path.startswith(STORAGE_PREFIX):
            return None
        key, _, name = path[len(STORAGE_PREFIX) :].partition("/")
        blob = self.blobs.get(key)
        return blob if blob is not None and name == blob.filename else None  # the path comes decoded
