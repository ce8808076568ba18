"""Reply windows: whether a public outgoing message can reach the customer now.

Messaging channels (WhatsApp, Messenger, Instagram, TikTok) take free text only within a window
after the customer's last message, and a conversation's ``can_reply`` says whether it is open.
Outside it the server still answers 200 and the message fails seconds later (on WhatsApp with
"Template not found or invalid template name"), so the check comes before the send.
Rule: :func:`reply_window_error` decides from a :class:`Conversation` alone (no I/O, no clock);
:func:`reply_window_flow` reads the conversation when the message needs the check.
"""

from __future__ import annotations

from collections.abc import Generator

from airflow_provider_doto.api._conversations import Conversation, get_conversation_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.exceptions import DotoConfigError, DotoReplyWindowError

# The window of each channel that has one (CHATWOOT-ACCOUNT.md, message_window_service.rb).
REPLY_WINDOWS: dict[str, str] = {
    "Channel::Whatsapp": "24 hours after the customer's last message",
    "Channel::TwilioSms": "24 hours after the customer's last message (Twilio WhatsApp)",
    "Channel::FacebookPage": "24 hours after the customer's last message (7 days with the human-agent setting)",
    "Channel::Instagram": "24 hours after the customer's last message (7 days with the human-agent setting)",
    "Channel::Tiktok": "48 hours after the customer's last message",
    "Channel::Api": "the inbox's agent_reply_time_window after the customer's last message",
}


def needs_reply_window(message_type: str, private: bool) -> bool:
    """Only a public outgoing message goes to the customer; private notes (and incoming messages) never wait."""
    return message_type == "outgoing" and not private


def reply_window_error(conversation: Conversation) -> DotoReplyWindowError | None:
    """The error when the conversation's window is closed (``can_reply`` false), else None.

    ``can_reply`` None (a server that does not say) is not a closed window: the message is sent.
    """
    if conversation.can_reply is not False:
        return None
    channel = conversation.channel
    window = REPLY_WINDOWS.get(channel or "", "its reply window")
    return DotoReplyWindowError(
        f"Doto conversation {conversation.id} is outside its channel's reply window "
        f"({channel or 'channel not given'}: {window}); the server would store free text as sent and "
        "then fail it, so nothing was sent. Wait for the customer to write, or send a template.",
        conversation_id=conversation.id,
        channel=channel,
    )


def reply_window_flow(
    account_id: int, conversation_id: int, *, message_type: str = "outgoing", private: bool = False
) -> Generator[DotoRequest, DotoResponse, Conversation | None]:
    """One GET of the conversation when the message needs the check; raises
    :class:`DotoReplyWindowError` when its window is closed. The conversation read (None: no check)."""
    if not needs_reply_window(message_type, private):
        return None
    conversation = yield from get_conversation_flow(account_id, conversation_id)
    error = reply_window_error(conversation)
    if error is not None:
        raise error
    return conversation


def check_listed(conversation: Conversation | None, conversation_id: int) -> None:
    """A listed ``conversation`` handed to a send must be the one it sends to (else its window
    would decide for another conversation)."""
    if conversation is None:
        return
    if not isinstance(conversation, Conversation):
        raise DotoConfigError(
            f"conversation must be an api.Conversation (from the list), got {type(conversation).__name__}."
        )
    if conversation.id != conversation_id:
        raise DotoConfigError(
            f"conversation is conversation {conversation.id}, but the message goes to conversation "
            f"{conversation_id}; its reply window would decide for the wrong conversation."
        )


def window_view(conversation: Conversation) -> Conversation:
    """What a send's window check reads of a listed conversation, and no more: a batch keeps one
    per conversation it lists, and a listing's payload (the last message, the contact) is not
    needed for the decision."""
    return Conversation(
        id=conversation.id,
        last_activity_at=conversation.last_activity_at,
        inbox_id=conversation.inbox_id,
        channel=conversation.channel,
        can_reply=conversation.can_reply,
    )
