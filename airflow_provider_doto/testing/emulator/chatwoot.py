"""Chatwoot's server rules that the ``chatwoot`` flavor copies, as pure functions over messages.

How Chatwoot's MessageFinder picks and orders a message list from the request's params (read with
Ruby's ``to_i`` and Rails' ``present?``), and how its jbuilder views render a message, a list's
``meta`` and the profile (conversations: ``account``). The store decides what exists; this module only decides what Chatwoot would show of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_doto.testing.emulator.messages import (
    DEFAULT_AGENT,
    DEFAULT_AGENT_EMAIL,
    DEFAULT_CONTACT,
    MESSAGE_TYPES,
)

CONVERSATIONS_PER_PAGE = 25  # Chatwoot's conversation list page size (CONVERSATION_RESULTS_PER_PAGE)
# Chatwoot's push-event ``type`` of each sender kind.
CHATWOOT_SENDER_TYPES = {"Contact": "contact", "User": "user", "AgentBot": "agent_bot"}
_TO_I = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")


def ruby_to_i(value: str | None) -> int:
    """Ruby's ``String#to_i``: leading digits (optional sign, ``_`` separators), junk reads as 0."""
    match = _TO_I.match(value or "")
    return int(match.group(1).replace("_", "")) if match else 0


def present(value: str | None) -> bool:
    """Rails' ``present?`` for a request param: given and not only whitespace."""
    return value is not None and value.strip() != ""


def find_messages(messages: Sequence[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The messages MessageFinder answers for ``params``, from ``messages`` ordered by (created_at, id)."""
    rows = list(messages)
    if present(params.get("filter_internal_messages")):
        rows = [m for m in rows if not (m["private"] or m["message_type"] == "activity")]
    after, before = params.get("after"), params.get("before")
    # ``rows`` is ordered by created_at (ties by id): asc = as is, "desc ... reverse" = tail.
    if present(after) and present(before):
        low, high = ruby_to_i(after), ruby_to_i(before)
        return [m for m in rows if low <= m["id"] < high][:1000]
    if present(before):
        high = ruby_to_i(before)
        return [m for m in rows if m["id"] < high][-20:]
    if present(after):
        low = ruby_to_i(after)
        return [m for m in rows if m["id"] > low][:100]
    if present(params.get("before_timestamp")):
        ts = ruby_to_i(params.get("before_timestamp"))
        return [m for m in rows if m["created_at"] < ts][-20:]
    return rows[-20:]


def render_message(message: dict[str, Any], int_message_types: bool) -> dict[str, Any]:
    """Chatwoot's ``_message.json.jbuilder``: no account_id, lower-case sender types."""
    message_type: str | int = message["message_type"]
    if int_message_types:
        message_type = MESSAGE_TYPES.index(message["message_type"])
    rendered: dict[str, Any] = {
        "id": message["id"],
        "content": message["content"],
        "inbox_id": message["inbox_id"],
        "conversation_id": message["conversation_id"],
        "message_type": message_type,
        "content_type": message["content_type"],
        "status": message["status"],
        "content_attributes": message["content_attributes"],
        "created_at": message["created_at"],
        "private": message["private"],
        "source_id": message["source_id"],
    }
    sender = message.get("sender")
    if sender is not None:
        kind = CHATWOOT_SENDER_TYPES.get(sender["type"], str(sender["type"]).lower())
        rendered["sender"] = {**sender, "type": kind, "thumbnail": ""}
    if message.get("attachments"):
        rendered["attachments"] = message["attachments"]
    return rendered


def list_meta() -> dict[str, Any]:
    """Chatwoot's list ``meta`` for an unassigned conversation (no ``assignee`` key then)."""
    return {
        "labels": [],
        "additional_attributes": {},
        "contact": {"id": 1, "name": DEFAULT_CONTACT, "type": "contact", "thumbnail": ""},
        "contact_id": 1,
        "agent_last_seen_at": None,
        "assignee_last_seen_at": None,
    }


def render_profile(user_id: int, account_id: int, accounts: Iterable[int]) -> dict[str, Any]:
    """``GET /api/v1/profile``: the default agent as an administrator of every account in ``accounts``."""
    return {
        "id": user_id,
        "name": DEFAULT_AGENT,
        "available_name": DEFAULT_AGENT,
        "display_name": DEFAULT_AGENT,
        "email": DEFAULT_AGENT_EMAIL,
        "account_id": account_id,
        "role": "administrator",
        "type": "user",
        "accounts": [
            {"id": a, "name": f"Account {a}", "role": "administrator", "status": "active"} for a in accounts
        ],
    }
