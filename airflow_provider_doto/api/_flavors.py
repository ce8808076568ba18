"""Server flavors: whether a server reads ``before``/``after`` as Unix timestamps (Doto's reference)
or as message ids (Chatwoot's finder), and the two-request probe that finds out.

Rule: detection is a flow like any other (no I/O here); once known, a flavor is kept (per hook and
process in :class:`ServerFlavor`, and in a watch's state) so the probe runs once.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._messages import parse_message_list
from airflow_provider_doto.api._settings import FLAVORS
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import DotoConfigError


@dataclass
class ServerFlavor:
    """How a connection's server reads ``before``/``after``: as configured, or as ``auto`` found out.

    The hooks keep one per connection and process, so detection runs once; watches also keep the
    resolved flavor in their state, so a reschedule or a restarted trigger does not probe again.
    """

    configured: str = "auto"
    detected: str | None = None
    announced: bool = False

    def __post_init__(self) -> None:
        if self.configured not in FLAVORS:
            raise DotoConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {self.configured!r}.")

    @classmethod
    def of(cls, flavor: str | ServerFlavor) -> ServerFlavor:
        return flavor if isinstance(flavor, ServerFlavor) else cls(flavor)

    @property
    def known(self) -> str | None:
        """``doto`` or ``chatwoot`` once known; None while ``auto`` has not decided."""
        return self.configured if self.configured != "auto" else self.detected

    def resolve_flow(
        self, account_id: int, conversation_id: int
    ) -> Generator[DotoRequest, DotoResponse, str | None]:
        """The server's flavor, detecting it with this conversation if needed (None: it is empty)."""
        if self.known is None:
            self.detected = yield from detect_flavor_flow(account_id, conversation_id)
        return self.known

    def announce(self) -> str | None:
        """The detected flavor the first time it is asked after detection, else None (log it once)."""
        if self.configured != "auto" or self.detected is None or self.announced:
            return None
        self.announced = True
        return self.detected


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
