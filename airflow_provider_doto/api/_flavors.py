"""How a server reads ``before``/``after``: as Unix timestamps (Doto's reference, flavor ``doto``) or as
message ids (Chatwoot's finder, flavor ``chatwoot``), and the two-request probe that finds out.

Rule: the reading is one immutable :class:`ServerReading`, owned by the caller (a hook, a pager, a
watch's state) and passed down; :func:`resolve_flow` is the one place that decides it, and it
*returns* the new value. Nothing here is shared or changed behind the caller's back.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace

from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._messages import parse_message_list
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import DotoConfigError

# What a connection may say (extra ``flavor``): "auto" finds out with :func:`detect_flavor_flow`.
FLAVORS = ("auto", "doto", "chatwoot")
# What a server is, once known.
SERVER_FLAVORS = ("doto", "chatwoot")


@dataclass(frozen=True)
class ServerReading:
    """How one connection's server reads ``before``/``after``: as configured, or as ``auto`` found out."""

    configured: str = "auto"
    detected: str | None = None  # what ``auto`` found (None until a probe has answered)

    def __post_init__(self) -> None:
        if self.configured not in FLAVORS:
            raise DotoConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {self.configured!r}.")
        if self.detected not in (None, *SERVER_FLAVORS):
            raise DotoConfigError(
                f"a detected flavor must be one of {', '.join(SERVER_FLAVORS)}, got {self.detected!r}."
            )

    @classmethod
    def of(cls, flavor: str | ServerReading | None) -> ServerReading:
        """A reading from a flavor's name (``None`` is ``auto``), or the reading itself."""
        if isinstance(flavor, ServerReading):
            return flavor
        return cls("auto" if flavor is None else flavor)

    @property
    def known(self) -> str | None:
        """``doto`` or ``chatwoot`` once known; None while ``auto`` has not decided."""
        return self.configured if self.configured != "auto" else self.detected

    def learned(self, found: str | None) -> ServerReading:
        """This reading with what a probe (or a saved state) found; itself when there is nothing to learn."""
        if found is None or self.known is not None:
            return self
        return replace(self, detected=found)


def resolve_flow(
    reading: ServerReading, account_id: int, conversation_id: int | str
) -> Generator[DotoRequest, DotoResponse, ServerReading]:
    """``reading``, known: probed with this conversation if needed (still unknown if it is empty)."""
    if reading.known is not None:
        return reading
    return reading.learned((yield from detect_flavor_flow(account_id, conversation_id)))


def detect_flavor_flow(
    account_id: int, conversation_id: int | str
) -> Generator[DotoRequest, DotoResponse, str | None]:
    """Whether the server reads ``before``/``after`` as timestamps or as ids; None if the conversation is empty.

    Two requests, the same under both readings until the answer. First the newest messages (no
    parameters). Then, with the newest id ``i``, ``after=i&before=i+1``: read as ids (Chatwoot's
    ``after`` is inclusive when both are given) that is message ``i`` itself; read as timestamps it
    is the open interval between two consecutive seconds, where no whole-second ``created_at`` can
    lie. So the answer does not depend on how ids compare with Unix timestamps.
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    request = list_request(account_id, conversation_id)
    newest = parse_message_list(request, (yield request))
    if not newest:
        return None
    probe = max(m.id for m in newest)
    request = list_request(account_id, conversation_id, after=probe, before=probe + 1)
    answer = parse_message_list(request, (yield request))
    return "chatwoot" if any(m.id == probe for m in answer) else "doto"
