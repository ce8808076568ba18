"""Attachments: the typed :class:`Attachment` of a message, the file name an export gives it, and
where a download may carry the API token.

Rule: no I/O. A ``data_url`` answers a redirect to a storage host; the transports follow each hop
themselves and ask :func:`carries_token` before every one: the token goes only to the Base URL's
origin (scheme, host and port), never anywhere else, whatever the redirect says.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from airflow_provider_doto.exceptions import DotoAttachmentError

# Redirects a download follows before giving up (Active Storage answers one; a CDN may add one).
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Bytes read and written at a time: what a download holds in memory, whatever the file's size.
CHUNK_SIZE = 1024 * 1024
# A file name's longest kept form (most file systems and object stores take 255 bytes a name).
MAX_NAME_LENGTH = 150
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Attachment:
    """One file of a message, as Chatwoot renders it; any field the server left out or sent in an
    unexpected shape is None (a message is never refused for its attachments)."""

    id: int | None = None
    message_id: int | None = None
    file_type: str | None = None
    extension: str | None = None
    data_url: str | None = None
    thumb_url: str | None = None
    file_size: int | None = None

    @property
    def file_name(self) -> str | None:
        """The name in ``data_url``'s last path segment (Active Storage ends its URLs with it)."""
        if not self.data_url:
            return None
        name = unquote(urlsplit(self.data_url).path.rsplit("/", 1)[-1])
        return name or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "file_type": self.file_type,
            "extension": self.extension,
            "data_url": self.data_url,
            "thumb_url": self.thumb_url,
            "file_size": self.file_size,
        }


def parse_attachment(data: Any) -> Attachment | None:
    """An :class:`Attachment` from one item of a message's ``attachments``; None if not an object."""
    if not isinstance(data, Mapping):
        return None
    size = _int(data.get("file_size"))
    return Attachment(
        id=_int(data.get("id")),
        message_id=_int(data.get("message_id")),
        file_type=_str(data.get("file_type")),
        extension=_str(data.get("extension")),
        data_url=_str(data.get("data_url")),
        thumb_url=_str(data.get("thumb_url")),
        file_size=size if size is not None and size >= 0 else None,
    )


def parse_attachments(data: Any) -> tuple[Attachment, ...]:
    """A message's ``attachments`` list; anything else (absent, null, an object) is no attachments."""
    if not isinstance(data, list):
        return ()
    return tuple(a for a in map(parse_attachment, data) if a is not None)


def safe_name(name: str | None, fallback: str = "attachment") -> str:
    """``name`` as one harmless path segment: its last component only, ASCII letters, digits, ``.``,
    ``_`` and ``-`` (others become ``_``), no leading dot (no hidden file, no ``..``), bounded."""
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode()
    text = posixpath.basename(text.replace("\\", "/"))
    text = _UNSAFE.sub("_", text).lstrip(".")
    if len(text) > MAX_NAME_LENGTH:
        _, dot, ext = text.rpartition(".")
        keep = ext[:20] if dot else ""
        text = text[: MAX_NAME_LENGTH - len(keep) - 1] + ("." + keep if keep else "")
    return text if text.strip("_") else fallback


def export_file_name(message_id: int, attachment: Attachment, index: int) -> str:
    """``<message id>-<attachment id>-<file name>``: which message a copied file belongs to, from its
    name alone. ``index`` (its position in the message) stands in for a missing attachment id."""
    fallback = (
        f"attachment.{safe_name(attachment.extension, 'bin')}" if attachment.extension else "attachment"
    )
    name = safe_name(attachment.file_name, fallback)
    ident = attachment.id if attachment.id is not None else f"n{index}"
    return f"{int(message_id)}-{ident}-{name}"


def origin(url: str) -> tuple[str, str, int | None]:
    """A URL's origin: scheme, host (lower case) and port (the scheme's default when not written)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: an origin nothing else shares
        port = -1
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def carries_token(url: str, base_url: str) -> bool:
    """Whether a request to ``url`` may carry the API token: only to the Base URL's own origin."""
    return origin(url) == origin(base_url)


def describe_origin(url: str) -> str:
    """How errors name a download's host: ``scheme://host:port``, never its path or query (a
    storage URL's query is often a signature that grants access)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def redirect_target(url: str, status: int, location: str | None) -> str | None:
    """Where a redirect answer points (``location`` resolved against ``url``), None if ``status`` is
    not a redirect. A redirect without a usable ``Location``, or to anything but http(s), is an error."""
    if status not in REDIRECT_STATUSES:
        return None
    if not location:
        raise DotoAttachmentError(
            f"the attachment download at {describe_origin(url)} answered HTTP {status} without a Location"
        )
    target = urljoin(url, location.strip())
    if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
        raise DotoAttachmentError(
            f"the attachment download at {describe_origin(url)} redirected to a non-http(s) URL"
        )
    return target


@dataclass(frozen=True)
class Hop:
    """One GET of a download: the URL, and whether the request may carry the API token."""

    url: str
    with_token: bool


def download_flow(url: str, base_url: str) -> Generator[Hop, tuple[int, str | None], None]:
    """The hops of a download, for both hooks to drive: yields each :class:`Hop` to request and is
    sent that answer's ``(status, Location header)``; returns when an answer is the file (2xx), the
    transport then streams its body. A redirect is the next hop, its token decided again for its
    own origin (:func:`carries_token`); an error status, more than :data:`MAX_REDIRECTS`
    redirects or a redirect to no http(s) URL raises :class:`DotoAttachmentError`."""
    for _ in range(MAX_REDIRECTS + 1):
        status, location = yield Hop(url, carries_token(url, base_url))
        target = redirect_target(url, status, location)
        if target is None:
            if not 200 <= status < 300:
                raise DotoAttachmentError(
                    f"the attachment download at {describe_origin(url)} answered HTTP {status}",
                    status=status,
                )
            return
        url = target
    raise DotoAttachmentError(
        f"the attachment download was redirected more than {MAX_REDIRECTS} times "
        f"(last to {describe_origin(url)})"
    )


def transport_failure(hop: Hop, exc: BaseException) -> DotoAttachmentError:
    """A hop that got no answer: the exception's type only (its text and attributes may hold the
    request's headers, the token among them); raise it ``from None``, outside the ``except``."""
    return DotoAttachmentError(
        f"the attachment download at {describe_origin(hop.url)} failed ({type(exc).__name__})"
    )


def check_downloadable(attachment: Attachment) -> str:
    """The attachment's ``data_url``, or an error saying it has none to copy."""
    url = attachment.data_url
    if not url or urlsplit(url).scheme.lower() not in _DEFAULT_PORTS:
        raise DotoAttachmentError(
            f"attachment {attachment.id} of message {attachment.message_id} has no http(s) data_url to download"
        )
    return url
