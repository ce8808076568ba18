"""Cell formatting for the results rows the newer benchmark modules build (as ``bench/__main__.py`` does)."""

from __future__ import annotations


def num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, base: float | None) -> str:
    """``ours / base``; below 0.01 with four decimals, so a large gap does not read as 0.00x."""
    if ours is None or not base:
        return "n/a"
    value = ours / base
    return f"{value:.4f}x" if value < 0.01 else f"{value:.2f}x"


def ok(met: bool) -> str:
    return "yes" if met else "**NO**"
