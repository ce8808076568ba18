"""The emulator's two personalities and the knobs that tell them apart.

``doto`` answers like Doto's reference server (``before``/``after`` are timestamps, string message
types); ``chatwoot`` like Chatwoot's real one (ids, integer types, page caps, soft delete, a flood
guard). A flavor is only a preset of knobs, so switching keeps the data. ``EmulatorKnobs`` is the
emulator's validated face over them; their values live in the store, under its lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from airflow_provider_doto.testing.emulator.store import Store

Flavor = Literal["doto", "chatwoot"]
FLAVORS: tuple[str, ...] = ("doto", "chatwoot")
# Chatwoot: CONVERSATION_MESSAGE_PER_MINUTE_LIMIT (default 200) messages per conversation per minute.
CHATWOOT_RATE_LIMIT = (200, 60)
MAX_CONTENT_LENGTH = 150_000  # Chatwoot's Message validation


def check_flavor(flavor: str) -> Flavor:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {FLAVORS}")
    return flavor  # type: ignore[return-value]


class EmulatorKnobs:
    """The flavor and knobs of ``DotoEmulator`` (mixed into it): checked here, kept in ``_store``."""

    _store: Store

    @property
    def flavor(self) -> Flavor:
        """``"doto"`` or ``"chatwoot"``; setting it keeps the data and sets that flavor's knob defaults."""
        return self._store.flavor

    @flavor.setter
    def flavor(self, value: Flavor | str) -> None:
        self._store.apply_flavor_defaults(value)

    @property
    def page_cap(self) -> int | None:
        """Max messages per list response (None = all): oldest after ``after``, else the newest."""
        return self._store.page_cap

    @page_cap.setter
    def page_cap(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError("page_cap must be a positive int or None")
        self._store.page_cap = value

    @property
    def int_message_types(self) -> bool:
        """Answer message_type as Chatwoot's integers (0 incoming, 1 outgoing, 2 activity, 3 template)."""
        return self._store.int_message_types

    @int_message_types.setter
    def int_message_types(self, value: bool) -> None:
        self._store.int_message_types = value

    @property
    def soft_delete(self) -> bool:
        """Delete like Chatwoot: keep the message, flagged deleted; a second delete answers 200."""
        return self._store.soft_delete

    @soft_delete.setter
    def soft_delete(self, value: bool) -> None:
        self._store.soft_delete = value

    @property
    def drop_content_attributes(self) -> bool:
        """Store POSTed messages without their ``content_attributes`` (a server that keeps none)."""
        return self._store.drop_content_attributes

    @drop_content_attributes.setter
    def drop_content_attributes(self, value: bool) -> None:
        self._store.drop_content_attributes = value

    @property
    def message_rate_limit(self) -> tuple[int, int] | None:
        """The flood guard as ``(limit, window_seconds)``, or None (off; the doto flavor's default).

        A POST answers 422 ``{"error": "Too many messages"}`` when the conversation already holds
        ``limit`` messages created in the last ``window`` seconds of the emulator's clock.
        """
        return self._store.rate_limit

    def set_message_rate_limit(self, limit: int | None, window: int = 60) -> None:
        """Turn the flood guard on (``limit`` messages per ``window`` seconds) or off (``None``)."""
        if limit is None:
            self._store.rate_limit = None
            return
        if not isinstance(limit, int) or limit < 1 or not isinstance(window, int) or window < 1:
            raise ValueError("limit and window must be positive ints")
        self._store.rate_limit = (limit, window)

    @property
    def max_content_length(self) -> int | None:
        """POSTed content longer than this answers 422 (Chatwoot: 150,000); None = no limit."""
        return self._store.max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError("max_content_length must be a positive int or None")
        self._store.max_content_length = value

    @property
    def max_upload_bytes(self) -> int:
        """A POSTed file larger than this, in a web-widget inbox, answers 422 "File size is too big"
        (Chatwoot: 40 MB, ``MAXIMUM_FILE_UPLOAD_SIZE``); other inboxes take any size, as Chatwoot does."""
        return self._store.max_upload_bytes

    @max_upload_bytes.setter
    def max_upload_bytes(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError("max_upload_bytes must be a positive int")
        self._store.max_upload_bytes = value

    @property
    def supports_updated_within(self) -> bool:
        """Whether the conversation list honours ``updated_within`` (Chatwoot since February 2024);
        False plays an older server that ignores it and pages as usual."""
        return self._store.supports_updated_within

    @supports_updated_within.setter
    def supports_updated_within(self, value: bool) -> None:
        self._store.supports_updated_within = bool(value)

    @property
    def window_failure_delay(self) -> int:
        """Seconds of the clock after the 200 at which free text sent outside a WhatsApp window turns
        ``failed`` with ``external_error`` "Template not found or invalid template name" (default 3)."""
        return self._store.window_failure_delay

    @window_failure_delay.setter
    def window_failure_delay(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("window_failure_delay must be an int >= 0 (seconds)")
        self._store.window_failure_delay = value

    @property
    def delivery_receipts(self) -> tuple[int, int] | None:
        """``(delivered_after, read_after)`` seconds of the clock after the 200 at which a public
        outgoing message of a messaging channel (not API inboxes), sent inside its window, turns
        ``delivered`` then ``read``; None (the default): it stays ``sent``."""
        return self._store.delivery_receipts

    @delivery_receipts.setter
    def delivery_receipts(self, value: tuple[int, int] | None) -> None:
        if value is not None:
            delivered, read = value
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (delivered, read)):
                raise ValueError("delivery_receipts must be None or (delivered_after, read_after), ints >= 0")
            value = (delivered, read)
        self._store.delivery_receipts = value
