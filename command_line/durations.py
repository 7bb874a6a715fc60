"""Durations as people write them on a command line: ``90``, ``20s``, ``5m``, ``1h30m``, ``5h45m``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds, or parts of hours, minutes and seconds in that order.

    Raises ValueError naming the accepted forms for anything else (a typo must not become "forever").
    """
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _PART.findall(text)
    units = [unit for _, unit in parts]
    if not parts or "".join(n + u for n, u in parts) != text or units != sorted(set(units), key="hms".index):
        raise ValueError(f"{text!r} is not a duration: write seconds (90), or hours, minutes, seconds (1h30m, 20s)")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)
