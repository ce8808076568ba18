"""Everything the provider knows about Doto's Messages API, with no I/O (the sans-I/O idea of h11).

The core builds requests, reads responses into typed :class:`Message` objects or typed errors, and
holds the few algorithms the contract asks for. The sync hook (requests) and the async hook
(aiohttp) only move bytes: they drive the generator "flows" of the modules below, sending each
yielded request and feeding back the response, so nothing about the API is written twice. No
module here reads a clock or touches Airflow: the transports stamp each response with when it
arrived, callers pass the times they mean.

This package's names (``__all__``) are what a user of the hooks needs: the values they take and
return (messages, conversations and the query that lists them), the watch and its filter, the server's reading, the delivery key, the retry policy and the
batch's result rules (docs/hooks.md). Errors are in :mod:`airflow_provider_doto.exceptions`. The
flows, parsers and validators are the hooks' business: they import them from their modules, one
concern a module:

- ``_settings``: :class:`DotoSettings` from a connection's fields, Base URL and token checks.
- ``_values``: timestamps, ids, content and send options, checked.
- ``_http``: the request and response types, the token header, the mapping of a response (or a
  transport failure) onto the provider's errors.
- ``_messages``: :class:`Message` and the parsers of Doto's answers.
- ``_attachments``: :class:`Attachment`, the file name an export gives one, and which origin a
  download may send the token to (``carries_token``: the Base URL's only).
- ``_flows``: ``run_flow`` / ``arun_flow``, and the send, delete and connection-check flows.
- ``_flavors``: :class:`ServerReading`: timestamps (Doto) or ids (Chatwoot); ``resolve_flow``.
- ``_listing``: ``list_messages_flow`` and the streaming ``MessagePager``.
- ``_conversations``: :class:`Conversation`, :class:`ConversationQuery`, the account's conversation
  list (``ConversationPager``, ``list_conversations_flow``) and ``get_conversation_flow``.
- ``_retry_policy``: :class:`RetryPolicy` and what is retryable (applied by the transports).
- ``_pacing``: the connection's pace under the server's rate limit (``Pacer``: a token bucket, one
  pause for every request after a 429, AIMD, a time budget), driven by the hooks with their clock.
- ``_watch``: :class:`MessageFilter` and the :class:`MessageWatch` cursor (sensor and trigger).
- ``_window``: reply windows: whether a public outgoing message may be sent now (``can_reply``).
- ``_templates``: message templates (Chatwoot's ``template_params``), checked field by field.
- ``_status``: delivery status: reading a created message back until it is delivered, read or failed.
- ``_delivery``: duplicate-safe sending: :func:`delivery_key`, ``send_once_flow``.
- ``_batch``: one message to each of many conversations: :class:`BatchItem`, :class:`BatchResult`,
  :func:`batch_counts`, :func:`check_batch`.

Each name is imported from its module when first used (PEP 562), so a DAG file that imports an
operator pays only for what its constructor checks, never for the flows, the listing or the watch
it would run; type checkers see the imports below as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_doto.api._attachments import Attachment
    from airflow_provider_doto.api._batch import BatchItem, BatchResult, batch_counts, check_batch
    from airflow_provider_doto.api._conversations import Conversation, ConversationQuery
    from airflow_provider_doto.api._delivery import DELIVERY_KEY_ATTRIBUTE, delivery_key
    from airflow_provider_doto.api._flavors import FLAVORS, ServerReading
    from airflow_provider_doto.api._messages import Message, Sender
    from airflow_provider_doto.api._retry_policy import RetryPolicy
    from airflow_provider_doto.api._settings import DotoSettings
    from airflow_provider_doto.api._values import DEFAULT_OVERLAP, MESSAGE_TYPES, Timestamp, to_timestamp
    from airflow_provider_doto.api._watch import MessageFilter, MessageWatch

# Where each public name is defined: ``api.X`` imports that module (and what it imports) on first use.
_MODULES: dict[str, tuple[str, ...]] = {
    "_values": ("DEFAULT_OVERLAP", "MESSAGE_TYPES", "Timestamp", "to_timestamp"),
    "_messages": ("Message", "Sender"),
    "_attachments": ("Attachment",),
    "_conversations": ("Conversation", "ConversationQuery"),
    "_settings": ("DotoSettings",),
    "_flavors": ("FLAVORS", "ServerReading"),
    "_retry_policy": ("RetryPolicy",),
    "_watch": ("MessageFilter", "MessageWatch"),
    "_delivery": ("DELIVERY_KEY_ATTRIBUTE", "delivery_key"),
    "_batch": ("BatchItem", "BatchResult", "batch_counts", "check_batch"),
}
_SOURCE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "DEFAULT_OVERLAP",
    "DELIVERY_KEY_ATTRIBUTE",
    "FLAVORS",
    "MESSAGE_TYPES",
    "Attachment",
    "BatchItem",
    "BatchResult",
    "Conversation",
    "ConversationQuery",
    "DotoSettings",
    "Message",
    "MessageFilter",
    "MessageWatch",
    "RetryPolicy",
    "Sender",
    "ServerReading",
    "Timestamp",
    "batch_counts",
    "check_batch",
    "delivery_key",
    "to_timestamp",
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
