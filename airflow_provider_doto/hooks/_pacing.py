"""The hooks' side of pacing: one :class:`~api._pacing.Pacer` per process and (connection, Base URL),
driven with the real clock and real sleeps around every exchange.

Every hook instance of a connection shares its pacer, as they share what ``auto`` found about the
server (``hooks/doto.py``): a batch, the sends of an operator and the polls of a trigger in one
process all take their slots from the same pace, and all pause together when the server throttles.
Each call into the pacer is made under a ``threading.Lock`` and never awaits, so it is safe from
threads (the sync hook) and from tasks of one or several event loops (the async hook). The sync and
async loops below are the same few lines, one sleeping with ``time.sleep``, one with ``asyncio.sleep``;
every decision is the pacer's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from airflow_provider_doto.api._pacing import Pacer, PaceSettings, Slot, throttle_exhausted

if TYPE_CHECKING:
    from airflow_provider_doto.api import DotoSettings
    from airflow_provider_doto.api._http import DotoRequest, DotoResponse

log = logging.getLogger(__name__)

_lock = threading.Lock()  # guards the registry and every pacer in it (held only for a few arithmetic steps)
_pacers: dict[tuple[str, str], SharedPacer] = {}


class SharedPacer:
    """A process's pacer of one connection, called under the module's lock."""

    def __init__(self, conn_id: str, settings: PaceSettings) -> None:
        self.conn_id = conn_id
        self.pacer = Pacer(settings)

    @property
    def settings(self) -> PaceSettings:
        return self.pacer.settings

    def reserve(self) -> Slot:
        with _lock:
            return self.pacer.reserve(time.time())

    def current(self, slot: Slot) -> bool:
        with _lock:
            return self.pacer.current(slot)

    def answered(self, request: DotoRequest, response: DotoResponse) -> bool:
        """Tell the pacer; True if the answer was a throttle (reserve again and resend)."""
        with _lock:
            pauses = self.pacer.pauses
            throttled = self.pacer.answered(response, time.time(), random.random())
            paused = self.pacer.pauses != pauses
            until, rate = self.pacer.paused_until, self.pacer.rate(self.pacer.paused_until)
        if paused:
            log.warning(
                "Doto connection %r: the server throttled %s (HTTP 429, %s); every request of this "
                "connection in this process waits %.1f s, then goes on at %.0f requests a minute",
                self.conn_id,
                request.describe(),
                "Retry-After " + response.headers["retry-after"]
                if response.headers.get("retry-after")
                else "no Retry-After: until the server's window turns",
                max(0.0, until - time.time()),
                rate,
            )
        return throttled


def pacer_for(settings: DotoSettings) -> SharedPacer | None:
    """The process's pacer of this connection and server; None when the connection turns pacing off.

    A connection whose pacing extras changed gets a fresh pacer.
    """
    if not settings.pace.on:
        return None
    key = (settings.conn_id, settings.base_url)
    with _lock:
        shared = _pacers.get(key)
        if shared is None or shared.settings != settings.pace:
            shared = _pacers[key] = SharedPacer(settings.conn_id, settings.pace)
        return shared


def forget_pacers() -> None:
    """Drop every pacer of this process (tests: the next request starts with a full bucket, unpaused)."""
    with _lock:
        _pacers.clear()


def send_paced(
    shared: SharedPacer,
    request: DotoRequest,
    send_once: Callable[[DotoRequest], DotoResponse],
    *,
    resend: bool = True,
) -> DotoResponse:
    """One exchange at the pace: wait for a slot, send, and on a 429 wait with everyone and resend.

    A throttle that outlasts the connection's budget raises :func:`throttle_exhausted`. With
    ``resend=False`` (a one-attempt policy: a trigger's poll) the 429 is returned once the pacer has
    paused, for the caller to report; its next request waits out the pause like every other.
    """
    while True:
        slot = shared.reserve()
        if slot.exhausted is not None:
            raise throttle_exhausted(request, shared.settings, slot)
        if slot.wait > 0:
            time.sleep(slot.wait)
            if not shared.current(slot):
                continue  # the server throttled meanwhile: a new slot, after the pause
        response = send_once(request)
        if not shared.answered(request, response) or not resend:
            return response


async def asend_paced(
    shared: SharedPacer,
    request: DotoRequest,
    send_once: Callable[[DotoRequest], Awaitable[DotoResponse]],
    *,
    resend: bool = True,
) -> DotoResponse:
    """:func:`send_paced` for the async hook."""
    while True:
        slot = shared.reserve()
        if slot.exhausted is not None:
            raise throttle_exhausted(request, shared.settings, slot)
        if slot.wait > 0:
            await asyncio.sleep(slot.wait)
            if not shared.current(slot):
                continue
        response = await send_once(request)
        if not shared.answered(request, response) or not resend:
            return response
