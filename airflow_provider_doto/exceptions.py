"""Every error the Doto provider raises, on one screen.

    DotoError
    ├── DotoConfigError            bad connection or argument; raised before anything is sent
    │   └── DotoUploadError        an attachment to send was refused (count, size, type): nothing was sent
    ├── DotoHTTPError              the server answered with an error status
    │   ├── DotoAuthError          401 / 403: bad or missing API token
    │   ├── DotoNotFoundError      404: account, conversation or message missing, or no Doto API at the URL
    │   ├── DotoValidationError    422: the server refused the input
    │   ├── DotoRateLimitError     429, or 422 "Too many messages" (flood guard): slow down
    │   └── DotoServerError        5xx
    ├── DotoTransportError         no HTTP answer at all
    │   ├── DotoConnectError       the request never reached the server (safe to resend)
    │   ├── DotoTimeoutError       no answer in time (a POST may have been committed)
    │   └── DotoConnectionLostError connection dropped mid-request (a POST may have been committed)
    ├── DotoResponseError          an answer that is not what the API documents (not JSON, wrong shape)
    ├── DotoBatchError             more messages of a batch failed than it tolerates (names them)
    ├── DotoReplyWindowError       the channel's reply window is closed: nothing was sent
    ├── DotoDeliveryError          the server marked a sent message failed, or it never reached the wanted status
    ├── DotoAttachmentError        an attachment could not be downloaded (no URL, error status, too many redirects)
    └── DotoTriggerError           a trigger's error event whose error is none of these (its text)

A trigger reports an error as text in its event (``error_type`` names the class); whoever reads the
event raises the same class again (:func:`error_from_event`): ``except DotoAuthError`` catches a
refused token in poke, reschedule and deferrable mode alike.

Messages name the HTTP method, path, status and Doto's own ``error`` text. They never contain the
API token: requests are described by method and path only, and bodies are never echoed raw.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "DotoAttachmentError",
    "DotoAuthError",
    "DotoBatchError",
    "DotoConfigError",
    "DotoConnectError",
    "DotoConnectionLostError",
    "DotoDeliveryError",
    "DotoError",
    "DotoHTTPError",
    "DotoNotFoundError",
    "DotoRateLimitError",
    "DotoReplyWindowError",
    "DotoResponseError",
    "DotoServerError",
    "DotoTimeoutError",
    "DotoTransportError",
    "DotoTriggerError",
    "DotoUploadError",
    "DotoValidationError",
]


class DotoError(Exception):
    """Base class of every error raised by the Doto provider."""

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path

    def __reduce__(self):
        # Errors cross process boundaries (task runner, triggerer); keep keyword-only fields.
        return _rebuild, (type(self), str(self), self.__dict__)


def _rebuild(cls: type[DotoError], message: str, state: dict) -> DotoError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class DotoConfigError(DotoError, ValueError):
    """A connection or argument is missing or invalid; nothing was sent."""


class DotoUploadError(DotoConfigError):
    """An attachment to send was refused before anything was sent: too many files, one too large,
    a type the server does not take, or a file that cannot be read. ``filename`` names the file
    (None when the whole set was refused), ``reason`` says what was wrong.
    """

    def __init__(self, message: str, *, filename: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.filename = filename
        self.reason = reason


class DotoHTTPError(DotoError):
    """Doto answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int,
        doto_error: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.doto_error = doto_error


class DotoAuthError(DotoHTTPError):
    """401/403: the API token is wrong, revoked or lacks access."""


class DotoNotFoundError(DotoHTTPError):
    """404: the account, conversation or message does not exist."""


class DotoValidationError(DotoHTTPError):
    """422: Doto refused the request's content."""


class DotoRateLimitError(DotoHTTPError):
    """429, or Chatwoot's 422 "Too many messages" flood guard: too many requests (nothing was done).

    ``retry_after`` holds the server's wait in seconds, if it gave one (the flood guard never does).
    Not a :class:`DotoValidationError`: it is retried, and a trigger keeps polling. ``waited`` is set
    when a paced connection gave up (the throttle outlasted ``rate_limit_wait_seconds``): the seconds
    it waited; such an error is final for that request, never retried again.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, waited: float | None = None, **kwargs
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.waited = waited


class DotoServerError(DotoHTTPError):
    """5xx: Doto (or a proxy in front of it) failed."""


class DotoTransportError(DotoError):
    """No HTTP answer was received."""


class DotoConnectError(DotoTransportError):
    """The connection could not be opened: the request certainly never reached Doto."""


class DotoTimeoutError(DotoTransportError):
    """Doto did not answer within the timeout; a POST may still have been committed."""


class DotoConnectionLostError(DotoTransportError):
    """The connection broke after the request was sent; a POST may have been committed."""


class DotoResponseError(DotoError):
    """Doto's answer could not be understood (not JSON, or not the documented shape)."""


class DotoBatchError(DotoError):
    """More messages of a batch failed (after their retries) than the batch tolerates.

    ``failed`` of ``total`` failed; ``conversation_ids`` lists the failed conversations.
    """

    def __init__(
        self, message: str, *, failed: int, total: int, conversation_ids: tuple[int, ...] = ()
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.total = total
        self.conversation_ids = conversation_ids


class DotoReplyWindowError(DotoError):
    """The conversation's channel does not take free text now (``can_reply`` false): nothing was sent.

    ``conversation_id`` and ``channel`` (e.g. ``Channel::Whatsapp``) name where.
    """

    def __init__(
        self, message: str, *, conversation_id: int | None = None, channel: str | None = None
    ) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id
        self.channel = channel


class DotoDeliveryError(DotoError):
    """A created message was marked ``failed`` (``external_error`` says why), or did not reach the
    status waited for in time (``message_status`` is the last one read)."""

    def __init__(
        self,
        message: str,
        *,
        conversation_id: int | None = None,
        message_id: int | None = None,
        message_status: str | None = None,
        external_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.message_status = message_status
        self.external_error = external_error


class DotoAttachmentError(DotoError):
    """An attachment could not be downloaded: it has no ``data_url``, its host answered an error
    status, redirected too often or the connection failed. Names the host's origin only (a storage
    URL's path and query may grant access) and never chains an exception that may quote a header.

    ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DotoTriggerError(DotoError):
    """A trigger's error event named no error of this module (e.g. a failed connection lookup)."""


# What an event's ``error_type`` may rebuild: this module's errors, looked up by name. An event is
# data; a name outside this table is never resolved (it becomes a DotoTriggerError).
ERRORS_BY_NAME: Mapping[str, type[DotoError]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (
            DotoError,
            DotoConfigError,
            DotoUploadError,
            DotoHTTPError,
            DotoAuthError,
            DotoNotFoundError,
            DotoValidationError,
            DotoRateLimitError,
            DotoServerError,
            DotoTransportError,
            DotoConnectError,
            DotoTimeoutError,
            DotoConnectionLostError,
            DotoResponseError,
            DotoBatchError,
            DotoReplyWindowError,
            DotoDeliveryError,
            DotoAttachmentError,
            DotoTriggerError,
        )
    }
)
# The attributes an event carries (``error_fields``) and their value when it has none: each class
# gets those it sets in ``__init__``, so ``err.status`` or ``err.retry_after`` read as in poke mode.
ERROR_FIELDS: Mapping[type[DotoError], tuple[str, ...]] = MappingProxyType(
    {
        DotoError: ("method", "path"),
        DotoHTTPError: ("status", "doto_error"),
        DotoRateLimitError: ("retry_after", "waited"),
        DotoBatchError: ("failed", "total"),
        DotoReplyWindowError: ("conversation_id", "channel"),
        DotoDeliveryError: ("conversation_id", "message_id", "message_status", "external_error"),
        DotoAttachmentError: ("status",),
        DotoUploadError: ("filename", "reason"),
    }
)


_PLAIN = str | int | float | bool | None


def error_fields(error: BaseException) -> dict[str, Any]:
    """The plain fields of a provider error (``method``, ``path``, ``status``, ...) for an event."""
    names = {name for cls, fields in ERROR_FIELDS.items() if isinstance(error, cls) for name in fields}
    return {name: value for name in sorted(names) if isinstance(value := getattr(error, name, None), _PLAIN)}


def error_from_event(error_type: object, message: str, fields: Mapping[str, Any] | None = None) -> DotoError:
    """The error a trigger's error event reports, rebuilt as the class ``error_type`` names.

    ``message`` is the event's text (``"DotoAuthError: ..."``; the leading class name is dropped,
    the traceback shows it). A name that is not one of this module's errors (a ``RuntimeError`` of
    a connection lookup, a class of a later version) gives :class:`DotoTriggerError` with the whole
    text. ``fields`` (the event's ``error_fields``) fill the class's attributes; missing ones, and
    any that is not a plain value, are None.
    """
    cls = ERRORS_BY_NAME.get(error_type) if isinstance(error_type, str) else None
    if cls is None:
        return DotoTriggerError(message)
    text = message.removeprefix(f"{cls.__name__}: ")
    names = [name for base, names in ERROR_FIELDS.items() if issubclass(cls, base) for name in names]
    given = fields if isinstance(fields, Mapping) else {}
    state: dict[str, Any] = {
        name: value if isinstance(value := given.get(name), _PLAIN) else None for name in names
    }
    if issubclass(cls, DotoBatchError):
        state["conversation_ids"] = ()
    return _rebuild(cls, text, state)
