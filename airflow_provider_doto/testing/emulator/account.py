"""Chatwoot's account-level rules: inboxes and their reply windows, the conversation finder, the views.

Pure functions and small records; the store keeps the state and calls these. Sources (Chatwoot):
``app/finders/conversation_finder.rb`` (params, counts, paging, ``updated_within``),
``app/models/concerns/sort_handler.rb`` (sort orders), ``conversations/message_window_service.rb``
(``can_reply``) and ``api/v1/conversations/partials/_conversation.json.jbuilder`` (the shape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_doto.testing.emulator.chatwoot import ruby_to_i

STATUSES: tuple[str, ...] = ("open", "resolved", "pending", "snoozed")
DEFAULT_STATUS = "open"
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")  # Chatwoot's enum order: 0..3
HOUR = 3600
DAY = 24 * HOUR

# channel name -> (Chatwoot's channel_type, reply window in seconds or None for none)
CHANNELS: dict[str, tuple[str, int | None]] = {
    "api": ("Channel::Api", None),  # unless the inbox sets agent_reply_time_window (hours)
    "web_widget": ("Channel::WebWidget", None),
    "email": ("Channel::Email", None),
    "whatsapp": ("Channel::Whatsapp", DAY),
    "twilio_whatsapp": ("Channel::TwilioSms", DAY),  # Twilio with medium whatsapp
    "twilio_sms": ("Channel::TwilioSms", None),
    "sms": ("Channel::Sms", None),
    "facebook": ("Channel::FacebookPage", DAY),  # 7 days with the human-agent setting
    "instagram": ("Channel::Instagram", DAY),  # 7 days with the human-agent setting
    "tiktok": ("Channel::Tiktok", 2 * DAY),
    "telegram": ("Channel::Telegram", None),
    "line": ("Channel::Line", None),
}
HUMAN_AGENT_CHANNELS = frozenset({"facebook", "instagram"})
# Channels that send a template outside the window; free text there ends "failed" with this error
# (``app/services/whatsapp/send_on_whatsapp_service.rb``).
TEMPLATE_CHANNELS = frozenset({"whatsapp", "twilio_whatsapp"})
WINDOW_FAILURE_ERROR = "Template not found or invalid template name"
# What Meta answers for a template name (or language) the WhatsApp account does not have; Chatwoot
# stores it as the failed message's external_error.
UNKNOWN_TEMPLATE_ERROR = "(#132001) Template name does not exist in the translation"


@dataclass
class Inbox:
    """An inbox of an account: its channel decides whether incoming POSTs are allowed and ``can_reply``."""

    inbox_id: int
    account_id: int
    channel: str
    name: str
    agent_reply_time_window: int | None = None  # hours; API channel only
    human_agent: bool = False  # Messenger / Instagram: 7-day window instead of 24 hours

    @property
    def channel_type(self) -> str:
        return CHANNELS[self.channel][0]

    @property
    def reply_window(self) -> int | None:
        """The channel's reply window in seconds, or None when replies are never refused."""
        if self.channel == "api":
            return None if not self.agent_reply_time_window else self.agent_reply_time_window * HOUR
        if self.channel in HUMAN_AGENT_CHANNELS and self.human_agent:
            return 7 * DAY
        return CHANNELS[self.channel][1]


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {tuple(CHANNELS)}")
    return channel


def can_reply(inbox: Inbox, last_incoming_at: int | None, now: int) -> bool:
    """MessageWindowService#can_reply?: no window -> True; else the last incoming message is inside it."""
    window = inbox.reply_window
    if window is None:
        return True
    if last_incoming_at is None:
        return False
    return now < last_incoming_at + window


def query_list(params: Mapping[str, Any], name: str) -> list[str] | None:
    """A Rails array param: ``name[]=a&name[]=b``, or ``name=a,b`` (acts-as-taggable splits on commas);
    None when absent. ``params`` maps a name to the list of its values."""
    values = params.get(f"{name}[]") or None
    if values is None and params.get(name):
        values = [v for raw in params[name] for v in raw.split(",")]
    if values is None:
        return None
    return [v.strip() for v in values if v.strip()]


def priority_rank(priority: str | None) -> int:
    """``CASE WHEN priority IS NULL THEN 0 ELSE priority END``: none sorts with low."""
    return 0 if priority is None else PRIORITIES.index(priority)


def sort_key(sort_by: str | None, now: int) -> tuple[Callable[[Any], tuple[Any, ...]], bool]:
    """(key over a conversation record, reverse) for ``sort_by``; unknown values sort as the default.

    Ties (undefined order in Postgres) fall back to the display id, in the same direction.
    """
    option = sort_by or "last_activity_at_desc"
    aliases = {
        "latest": "last_activity_at_desc",
        "sort_on_created_at": "created_at_asc",
        "sort_on_priority": "priority_desc",
        "sort_on_waiting_since": "waiting_since_asc",
    }
    option = aliases.get(option, option)
    if option in ("created_at_asc", "created_at_desc"):
        return (lambda c: (c.created_at, c.conversation_id)), option.endswith("desc")
    if option in ("priority_asc", "priority_desc"):
        return (
            lambda c: (priority_rank(c.priority), c.last_activity_at, c.conversation_id)
        ), option.endswith("desc")
    if option in ("waiting_since_asc", "waiting_since_desc"):
        # NULL waiting_since sorts as now(); ties by created_at in the same direction.
        return (
            lambda c: (now if c.waiting_since is None else c.waiting_since, c.created_at, c.conversation_id)
        ), option.endswith("desc")
    if option == "unread":
        # Conversation.sort_on_unread: the unread message count desc, then last_activity_at desc.
        return (lambda c: (c.unread_count, c.last_activity_at, c.conversation_id)), True
    if option == "last_activity_at_asc":
        return (lambda c: (c.last_activity_at, c.conversation_id)), False
    return (lambda c: (c.last_activity_at, c.conversation_id)), True


def page_number(value: str | None) -> int:
    """Kaminari's page: ``to_i``, anything below 1 is page 1."""
    return max(ruby_to_i(value), 1)


def render_contact(contact_id: int, name: str, created_at: int, last_activity_at: int) -> dict[str, Any]:
    """``api/v1/models/_contact.json.jbuilder``: the conversation's ``meta.sender``."""
    return {
        "additional_attributes": {},
        "availability_status": "offline",
        "email": None,
        "id": contact_id,
        "name": name,
        "phone_number": None,
        "blocked": False,
        "identifier": None,
        "thumbnail": "",
        "custom_attributes": {},
        "last_activity_at": last_activity_at,
        "created_at": created_at,
    }


def render_agent(user_id: int, name: str, account_id: int) -> dict[str, Any]:
    """``api/v1/models/_agent.json.jbuilder``: the conversation's ``meta.assignee``."""
    slug = name.lower().replace(" ", ".")
    return {
        "id": user_id,
        "account_id": account_id,
        "availability_status": "online",
        "auto_offline": True,
        "confirmed": True,
        "email": f"{slug}@doto.example",
        "available_name": name,
        "name": name,
        "role": "agent",
        "thumbnail": "",
        "custom_role_id": None,
    }


def render_team(team_id: int, name: str, account_id: int) -> dict[str, Any]:
    """``api/v1/models/_team.json.jbuilder``: the conversation's ``meta.team``."""
    return {
        "id": team_id,
        "name": name,
        "description": "",
        "allow_auto_assign": True,
        "account_id": account_id,
        "is_member": False,
    }


def list_body(payload: list[dict[str, Any]], counts: Mapping[str, int]) -> dict[str, Any]:
    """``conversations/index.json.jbuilder``: ``{"data": {"meta": counts, "payload": [...]}}``."""
    return {"data": {"meta": dict(counts), "payload": payload}}


def meta_body(counts: Mapping[str, int]) -> dict[str, Any]:
    """``conversations/meta.json.jbuilder``: the counts alone."""
    return {"meta": dict(counts)}
