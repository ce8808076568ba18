"""The response check the http provider's HttpEventTrigger baseline runs (it reloads this module per poll)."""

from __future__ import annotations

import os
from typing import Any

START = int(os.environ.get("DOTO_BENCH_START", "0"))


async def has_new_message(response: Any) -> bool:
    payload = response.json().get("payload", [])
    return any(m.get("message_type") == "incoming" and m.get("created_at", 0) >= START for m in payload)
