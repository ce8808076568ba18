"""A controllable clock that stamps ``created_at`` on emulated messages."""

from __future__ import annotations

import threading
import time


class Clock:
    """Whole Unix seconds; follows real time until frozen, never jumps backwards on unfreeze."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0  # added to real time while running
        self._frozen: int | None = None

    def now(self) -> int:
        """The current emulated time in whole seconds."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return int(time.time() + self._offset)

    @property
    def frozen(self) -> bool:
        """Whether the clock is standing still."""
        return self._frozen is not None

    def freeze(self, ts: int | None = None) -> int:
        """Stop the clock at ``ts`` (default: now) so many messages can share one second."""
        current = self.now() if ts is None else int(ts)
        with self._lock:
            self._frozen = current
        return current

    def set(self, ts: int) -> None:
        """Jump to ``ts``; a running clock keeps ticking from there, a frozen one stays put."""
        with self._lock:
            if self._frozen is not None:
                self._frozen = int(ts)
            else:
                self._offset = int(ts) - time.time()

    def advance(self, seconds: int) -> int:
        """Move the clock forward (or back, if negative) and return the new time."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += int(seconds)
            else:
                self._offset += int(seconds)
        return self.now()

    def unfreeze(self) -> None:
        """Resume ticking from the frozen value, so timestamps stay monotonic."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None

    def reset(self) -> None:
        """Follow real time again."""
        with self._lock:
            self._offset = 0.0
            self._frozen = None
