"""Text and numbers taken from a file, made safe to leave ml/io."""

from __future__ import annotations

import math
import re
from typing import SupportsFloat, cast

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
        # Anything float() refuses raises, which answers None.
        number = (
            float(cast("SupportsFloat", value)) if value not in (None, "") else None
        )
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


#: Longest file name ml/io reports; longer ones keep their start and their end.
MAX_NAME_LENGTH = 200
_DRIVE = re.compile(r"^[A-Za-z]:$")


def clean_name(value: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A file name fit for messages and the database, from one a zip or an upload
    gave: no control characters, "/" between folders, no empty, ".", ".." or drive
    parts (``../../etc/passwd`` is named ``etc/passwd``), and at most
    ``max_length`` characters (the middle elided, so the file's own name stays).
    Applying it twice changes nothing; "file" when nothing is left."""
    parts = _CONTROL.sub("", str(value)).replace("\\", "/").split("/")
    kept = [p.strip() for p in parts if p.strip() not in ("", ".", "..")]
    if kept and _DRIVE.match(kept[0]):
        kept = kept[1:]
    name = "/".join(kept) or "file"
    if len(name) <= max_length:
        return name
    head = (max_length - 1) // 2
    return f"{name[:head]}…{name[len(name) - (max_length - 1 - head) :]}"
