"""Everything the provider knows about Doto's Messages API, with no I/O (the sans-I/O idea of h11).

The core builds requests (:class:`DotoRequest`), reads responses (:class:`DotoResponse`) into typed
:class:`Message` objects or typed errors, and holds the few algorithms the contract asks for. The
sync hook (requests) and the async hook (aiohttp) only move bytes: they drive the generator "flows"
with :func:`run_flow` / :func:`arun_flow`, sending each yielded request and feeding back the
response, so nothing about the API is written twice. No module here reads a clock or touches
Airflow: the transports stamp each response with when it arrived, callers pass the times they mean.

One module a concern; this package is their one public face (``api.X``):

- ``_settings``: :class:`DotoSettings` from a connection's fields, Base URL checks.
- ``_values``: timestamps, ids and a message to send, checked.
- ``_http``: :class:`DotoRequest` / :class:`DotoResponse`, the token header, the mapping of a
  response (or a transport failure) onto the provider's errors.
- ``_messages``: :class:`Message` and the parsers of Doto's answers.
- ``_flows``: :func:`run_flow` / :func:`arun_flow`, and the send, delete and connection-check flows.
- ``_flavors``: :class:`ServerFlavor`: timestamps (Doto) or ids (Chatwoot), and detecting which.
- ``_listing``: :func:`list_messages_flow`: a window of messages from a capped server, once each;
  :class:`MessagePager` hands it out a page at a time (streaming).
- ``_retry_policy``: :func:`is_retryable` and :class:`RetryPolicy` (applied by the transports).
- ``_watch``: :class:`MessageFilter` and the :class:`MessageWatch` cursor (sensor and trigger).
- ``_delivery``: duplicate-safe sending: :func:`delivery_key`, :func:`send_once_flow`.
- ``_batch``: one message to each of many conversations: :class:`BatchItem`, :func:`build_batch`,
  :class:`BatchResult`, :func:`check_batch`.

Each name is imported from its module when first used (PEP 562), so a DAG file that imports an
operator pays only for what its constructor checks (``_values``), never for the flows, the
listing or the watch it would run; type checkers see the imports below as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_doto.api._batch import (
        BATCH_STATUSES,
        BatchItem,
        BatchResult,
        BatchSource,
        batch_counts,
        batch_ids,
        batch_item_flow,
        batch_output,
        batch_result,
        batch_source,
        build_batch,
        check_batch,
        check_items,
        failed_result,
        validate_batch_options,
        validate_max_in_flight,
        validate_tolerance,
    )
    from airflow_provider_doto.api._delivery import (
        DELIVERY_KEY_ATTRIBUTE,
        delivery_key,
        find_delivered,
        send_once_flow,
    )
    from airflow_provider_doto.api._flavors import FLAVORS, ServerReading, detect_flavor_flow, resolve_flow
    from airflow_provider_doto.api._flows import (
        arun_flow,
        check_connection_flow,
        delete_message_flow,
        run_flow,
        send_message_flow,
    )
    from airflow_provider_doto.api._http import (
        DotoRequest,
        DotoResponse,
        connect_error,
        connection_lost_error,
        error_for_status,
        headers,
        timeout_error,
        tls_error,
    )
    from airflow_provider_doto.api._listing import MessagePager, list_messages_flow
    from airflow_provider_doto.api._messages import Message, Sender, parse_message
    from airflow_provider_doto.api._retry_policy import RetryPolicy, is_retryable, retry_wait
    from airflow_provider_doto.api._settings import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, DotoSettings
    from airflow_provider_doto.api._values import (
        DEFAULT_OVERLAP,
        MAX_CONTENT_LENGTH,
        MESSAGE_TYPES,
        Timestamp,
        to_id,
        to_timestamp,
        validate_content,
        validate_options,
        validate_send,
    )
    from airflow_provider_doto.api._watch import MessageFilter, MessageWatch

# Where each public name is defined: ``api.X`` imports that module (and what it imports) on first use.
_MODULES: dict[str, tuple[str, ...]] = {
    "_values": (
        "DEFAULT_OVERLAP",
        "MAX_CONTENT_LENGTH",
        "MESSAGE_TYPES",
        "Timestamp",
        "to_id",
        "to_timestamp",
        "validate_content",
        "validate_options",
        "validate_send",
    ),
    "_batch": (
        "BATCH_STATUSES",
        "BatchItem",
        "BatchResult",
        "BatchSource",
        "batch_counts",
        "batch_ids",
        "batch_item_flow",
        "batch_output",
        "batch_result",
        "batch_source",
        "build_batch",
        "check_batch",
        "check_items",
        "failed_result",
        "validate_batch_options",
        "validate_max_in_flight",
        "validate_tolerance",
    ),
    "_settings": (
        "DEFAULT_BASE_URL",
        "DEFAULT_TIMEOUT",
        "DotoSettings",
    ),
    "_http": (
        "DotoRequest",
        "DotoResponse",
        "connect_error",
        "connection_lost_error",
        "error_for_status",
        "headers",
        "timeout_error",
        "tls_error",
    ),
    "_messages": (
        "Message",
        "Sender",
        "parse_message",
    ),
    "_retry_policy": (
        "RetryPolicy",
        "is_retryable",
        "resolve_flow",
        "retry_wait",
    ),
    "_flows": (
        "arun_flow",
        "check_connection_flow",
        "delete_message_flow",
        "run_flow",
        "send_message_flow",
    ),
    "_flavors": (
        "FLAVORS",
        "ServerReading",
        "detect_flavor_flow",
        "resolve_flow",
    ),
    "_listing": (
        "MessagePager",
        "list_messages_flow",
    ),
    "_watch": (
        "MessageFilter",
        "MessageWatch",
    ),
    "_delivery": (
        "DELIVERY_KEY_ATTRIBUTE",
        "delivery_key",
        "find_delivered",
        "send_once_flow",
    ),
}
_SOURCE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "BATCH_STATUSES",
    "DEFAULT_BASE_URL",
    "DEFAULT_OVERLAP",
    "DEFAULT_TIMEOUT",
    "DELIVERY_KEY_ATTRIBUTE",
    "FLAVORS",
    "MAX_CONTENT_LENGTH",
    "MESSAGE_TYPES",
    "BatchItem",
    "BatchResult",
    "BatchSource",
    "DotoRequest",
    "DotoResponse",
    "DotoSettings",
    "Message",
    "MessageFilter",
    "MessagePager",
    "MessageWatch",
    "RetryPolicy",
    "Sender",
    "ServerReading",
    "Timestamp",
    "arun_flow",
    "batch_counts",
    "batch_ids",
    "batch_item_flow",
    "batch_output",
    "batch_result",
    "batch_source",
    "build_batch",
    "check_batch",
    "check_connection_flow",
    "check_items",
    "connect_error",
    "connection_lost_error",
    "delete_message_flow",
    "delivery_key",
    "detect_flavor_flow",
    "error_for_status",
    "failed_result",
    "find_delivered",
    "headers",
    "is_retryable",
    "list_messages_flow",
    "parse_message",
    "resolve_flow",
    "retry_wait",
    "run_flow",
    "send_message_flow",
    "send_once_flow",
    "timeout_error",
    "tls_error",
    "to_id",
    "to_timestamp",
    "validate_batch_options",
    "validate_content",
    "validate_max_in_flight",
    "validate_options",
    "validate_send",
    "validate_tolerance",
]


def __getattr__(name: str) -> Any:
    module = _SOURCE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
