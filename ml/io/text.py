"""Text and numbers taken from a file, made safe to leave ml/io."""

from __future__ import annotations

import math
import re

# C0 controls, DEL and C1 controls: PostgreSQL refuses NUL in text, and the others
# garble terminals, logs and PDFs. No header field needs a tab or a newline.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def clean_text(value: object) -> str:
    """``str(value)`` without control characters and outer spaces; "" for None."""
    if value is None:
        return ""
    return _CONTROL.sub("", str(value)).strip()


def finite_or_none(value: object) -> float | None:
    """``float(value)`` when it is a finite number, else None (absent, blank, NaN,
    infinite or not a number)."""
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None
