"""Cell formatting for the results rows the newer benchmark modules build (as ``bench/__main__.py`` does)."""

from __future__ import annotations


def num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, base: float | None) -> str:
    return f"{ours / base:.2f}x" if ours is not None and base else "n/a"


def ok(met: bool) -> str:
    return "yes" if met else "**NO**"
