"""Attachments to send: the checks the server's limits make, and the ``multipart/form-data`` body.

Rule: no I/O. The hook looks at each file (its name and size, from a path, an object-storage path or
given bytes) and hands :class:`Upload` values here; :func:`check_uploads` refuses the set before
anything is sent, and :func:`multipart_body` lays the body out as byte strings and the uploads in
between, with its exact length, so a transport streams each file from its source a chunk at a time
(memory bounded by a chunk, not the file) with a ``Content-Length``, never chunked.

The limits are Chatwoot's (``Message::NUMBER_OF_PERMITTED_ATTACHMENTS``, ``app/models/attachment.rb``):
a server enforces type and size only for web-widget inboxes, but the channels behind the others
(WhatsApp, Messenger) are stricter, so every send is checked.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_doto.exceptions import DotoUploadError

MAX_ATTACHMENTS = 15
DEFAULT_MAX_UPLOAD_MB = 40
MEGABYTE = 1024 * 1024
# Chatwoot's Attachment::ACCEPTABLE_FILE_TYPES; images, audio and video are taken whatever their subtype.
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
MEDIA_PREFIXES = ("image/", "audio/", "video/")
ATTACHMENT_FIELD = "attachments[]"
# Python's table has no entry for some types the server takes; these are what browsers send.
_EXTRA_TYPES = {".7z": "application/x-7z-compressed", ".rar": "application/vnd.rar"}


def content_type_of(filename: str) -> str:
    """The content type a browser would send for ``filename`` (by its extension), else
    ``application/octet-stream`` (which no allow-list takes)."""
    _, dot, ext = filename.rpartition(".")
    if dot and f".{ext.lower()}" in _EXTRA_TYPES:
        return _EXTRA_TYPES[f".{ext.lower()}"]
    return mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"


def is_acceptable_type(content_type: str) -> bool:
    """Whether the server's allow-list takes ``content_type`` (parameters such as ``charset`` ignored)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(MEDIA_PREFIXES) or kind in ACCEPTABLE_FILE_TYPES


@dataclass(frozen=True)
class Upload:
    """One file to send: its name, size in bytes and content type, and the ``source`` the transport
    streams it from (a path, an object-storage path, or bytes: the core never reads it)."""

    filename: str
    size: int
    content_type: str
    source: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, filename: str, size: int, source: Any = None, content_type: str | None = None) -> Upload:
        return cls(filename, size, content_type or content_type_of(filename), source)


def max_upload_bytes(max_upload_mb: float | None) -> int:
    """The per-file limit in bytes: the connection's ``max_upload_mb``, else Chatwoot's 40 MB."""
    mb = DEFAULT_MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    return int(mb * MEGABYTE)


def check_uploads(uploads: Sequence[Upload], max_bytes: int) -> tuple[Upload, ...]:
    """``uploads``, or a :class:`DotoUploadError` naming the first file the server would refuse
    (and what was wrong), before anything is sent: at most :data:`MAX_ATTACHMENTS`, each non-empty,
    at most ``max_bytes``, of a type on the allow-list, with a name a form part can carry."""
    if len(uploads) > MAX_ATTACHMENTS:
        raise DotoUploadError(
            f"{len(uploads)} attachments: a message takes at most {MAX_ATTACHMENTS}; nothing was sent",
            reason="too many",
        )
    for upload in uploads:
        name = upload.filename
        if not name or any(c in name for c in '"\r\n\\/') or not name.isprintable():
            raise DotoUploadError(
                f"attachment {name!r}: a file name needs at least one character and no quote, "
                "backslash, slash or control character; nothing was sent",
                filename=name,
                reason="bad name",
            )
        if upload.size <= 0:
            raise DotoUploadError(
                f"attachment {name!r} is empty; nothing was sent", filename=name, reason="empty"
            )
        if upload.size > max_bytes:
            raise DotoUploadError(
                f"attachment {name!r} is {upload.size / MEGABYTE:.1f} MB, over the server's limit of "
                f"{max_bytes / MEGABYTE:g} MB a file (connection extra 'max_upload_mb'); nothing was sent",
                filename=name,
                reason="too large",
            )
        if not is_acceptable_type(upload.content_type):
            raise DotoUploadError(
                f"attachment {name!r} is {upload.content_type}, a type the server does not take "
                "(images, audio, video, csv, txt, rtf, json, pdf, zip/7z/rar/tar and office "
                "documents); nothing was sent",
                filename=name,
                reason="type not allowed",
            )
    return tuple(uploads)


@dataclass(frozen=True)
class MultipartBody:
    """A ``multipart/form-data`` body as parts: ``bytes`` go as they are, an :class:`Upload` is
    streamed from its source by the transport (exactly ``size`` bytes). ``length`` is the whole
    body's, so the request carries a ``Content-Length``."""

    boundary: str
    parts: tuple[bytes | Upload, ...]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        return sum(p.size if isinstance(p, Upload) else len(p) for p in self.parts)

    @property
    def fields(self) -> dict[str, str]:
        """The text fields, by name (what a test or a log may look at: never a file's bytes)."""
        found: dict[str, str] = {}
        for part in self.parts:
            if isinstance(part, bytes) and b'name="' in part and b"filename=" not in part:
                head, _, value = part.partition(b"\r\n\r\n")
                name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
                found[name] = value[: -len(b"\r\n")].decode() if value.endswith(b"\r\n") else value.decode()
        return found

    @property
    def uploads(self) -> tuple[Upload, ...]:
        return tuple(p for p in self.parts if isinstance(p, Upload))


def multipart_body(
    fields: Mapping[str, Any], uploads: Sequence[Upload], *, boundary: str | None = None
) -> MultipartBody:
    """The create request's form as the web app sends it: each field a part (booleans as
    ``true``/``false``, objects as JSON text: Chatwoot's message builder parses a string
    ``content_attributes``), then one ``attachments[]`` part per file."""
    boundary = boundary or f"doto-{secrets.token_hex(16)}"
    dash = f"--{boundary}\r\n".encode()
    parts: list[bytes | Upload] = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Mapping):
            text = json.dumps(value, separators=(",", ":"))
        else:
            text = str(value)
        parts.append(
            dash + f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + text.encode() + b"\r\n"
        )
    for upload in uploads:
        filename = upload.filename.encode("utf-8")
        parts.append(
            dash
            + f'Content-Disposition: form-data; name="{ATTACHMENT_FIELD}"; filename="'.encode()
            + filename
            + f'"\r\nContent-Type: {upload.content_type}\r\n\r\n'.encode()
        )
        parts.append(upload)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return MultipartBody(boundary, tuple(parts))
