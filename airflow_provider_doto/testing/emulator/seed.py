"""Seed data: a plausible support chat, for demos, the CLI and benchmarks."""

from __future__ import annotations

from airflow_provider_doto.testing.emulator.server import DotoEmulator

SUPPORT_CHAT: tuple[tuple[str, str], ...] = (
    ("incoming", "Hi, I need help with my order #48213."),
    ("outgoing", "Thanks for reaching out! Could you tell me what went wrong?"),
    ("incoming", "It says delivered, but nothing arrived."),
    ("outgoing", "Sorry about that. Let me check with the courier."),
    ("incoming", "Thanks. I was home all day yesterday."),
    ("outgoing", "The courier left it at the parcel locker on Elm Street."),
    ("incoming", "Oh, I didn't get a notification about that."),
    ("outgoing", "I've re-sent the pickup code to your email just now."),
    ("incoming", "Got it, thank you!"),
    ("outgoing", "You're welcome. Anything else I can help with?"),
    ("incoming", "Can I change the delivery address for my next order?"),
    ("outgoing", "Yes: Account > Addresses, then pick it at checkout."),
)


def seed_conversation(
    emulator: DotoEmulator, count: int, spacing: int = 20, conversation_id: int | None = None
) -> int:
    """Create a conversation holding ``count`` alternating chat lines, ``spacing`` seconds apart, ending now."""
    conversation = emulator.add_conversation(conversation_id)
    _add_chat(emulator, [conversation], count, spacing)
    return conversation


def seed_conversations(
    emulator: DotoEmulator, count: int, conversations: int = 1, spacing: int = 20
) -> list[int]:
    """Create ``conversations`` conversations of ``count`` chat lines each; returns their ids.

    Lines are added round-robin (line 1 of every conversation, then line 2...), so with several
    conversations each one's message ids are increasing but not consecutive, as on a real server.
    """
    if conversations < 1:
        raise ValueError("conversations must be at least 1")
    ids = [emulator.add_conversation() for _ in range(conversations)]
    _add_chat(emulator, ids, count, spacing)
    return ids


def _add_chat(emulator: DotoEmulator, conversations: list[int], count: int, spacing: int) -> None:
    now = emulator.clock.now()
    for i in range(count):
        message_type, text = SUPPORT_CHAT[i % len(SUPPORT_CHAT)]
        for conversation in conversations:
            emulator.add_message(
                conversation, text, message_type=message_type, created_at=now - (count - 1 - i) * spacing
            )
