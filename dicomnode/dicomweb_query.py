"""QIDO-RS query parameters (PS3.18 8.3.4, matching as PS3.4 C.2.2.2): attribute
matching, `limit`, `offset` and `includefield`. A parameter that cannot be used is a
BadQuery naming it and saying what would do."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

# The most results one answer holds; more are asked for with `offset` (the answer
# says so in a Warning header, as PS3.18 8.3.4.4 has it).
MAX_RESULTS = 1000

MATCH_KEYS = {
    "studies": (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "StudyDate",
        "AccessionNumber",
        "ModalitiesInStudy",
        "StudyDescription",
        "ReferringPhysicianName",
        "StudyID",
    ),
    "series": ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"),
    "instances": (
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
    ),
}
# Accepted and not acted on: the portal matches names as the standard's wildcards
# say, never fuzzily.
_IGNORED = {"fuzzymatching"}


class BadQuery(ValueError):
    """A query parameter the answer cannot be made with; the message names it."""


@dataclass(frozen=True)
class Query:
    matches: dict[str, str] = field(default_factory=dict)  # tag (hex) -> pattern
    limit: int = MAX_RESULTS
    offset: int = 0
    include_all: bool = False
    include: frozenset[str] = frozenset()  # tags (hex)
    truncated_limit: bool = False  # `limit` asked for more than MAX_RESULTS


def tag_hex(key: str) -> str:
    """A keyword ("PatientID") or tag ("00100020") as the tag in hex; BadQuery for
    anything else."""
    key = key.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        if keyword_for_tag(int(key, 16)):
            return key.upper()
    else:
        number = tag_for_keyword(key)
        if number is not None:
            return f"{number:08X}"
    raise BadQuery(f"{key!r} is not a DICOM attribute keyword or tag.")


def parse_query(params, *, level: str) -> Query:
    """`params` (a QueryDict) as a Query for `level` ("studies", "series",
    "instances")."""
    matches, include, include_all = {}, set(), False
    allowed = {f"{Tag(k):08X}": k for k in MATCH_KEYS[level]}
    for key in params:
        values = params.getlist(key)
        if key in ("limit", "offset") or key in _IGNORED:
            continue
        if key == "includefield":
            for name in ",".join(values).split(","):
                if name.strip() == "all":
                    include_all = True
                elif name.strip():
                    include.add(tag_hex(name))
            continue
        tag = tag_hex(key)
        if tag not in allowed:
            raise BadQuery(
                f"Searching {level} by {keyword_for_tag(int(tag, 16))} is not "
                f"supported; use {', '.join(MATCH_KEYS[level])}."
            )
        matches[tag] = _checked(tag, ",".join(v for v in values if v))
    limit = _count(params, "limit", MAX_RESULTS)
    return Query(
        matches={t: p for t, p in matches.items() if p},
        limit=min(limit, MAX_RESULTS),
        offset=_count(params, "offset", 0),
        include_all=include_all,
        include=frozenset(include),
        truncated_limit=limit > MAX_RESULTS,
    )


def _count(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit():
        raise BadQuery(f"{name} must be a whole number of 0 or more, not {raw!r}.")
    return int(raw)


_NUMERIC = ("IS", "US", "UL", "SL", "SS")


def _checked(tag: str, pattern: str) -> str:
    """The pattern, once it is known to be one the attribute can be matched with."""
    vr = dictionary_VR(int(tag, 16))
    if vr == "DA" and pattern:
        _date_range(pattern)
    if vr in _NUMERIC:
        for item in filter(None, re.split(r"[,\\]", pattern)):
            if not re.fullmatch(r"-?\d+", item.strip()):
                name = keyword_for_tag(int(tag, 16))
                raise BadQuery(f"{name} must be a whole number, not {item!r}.")
    return pattern


def _date(text: str, name: str) -> str:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise BadQuery(
            f"{name} must be a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD, "
            f"not {text!r}."
        ) from None
    return text


def _date_range(pattern: str) -> tuple[str, str]:
    """'20240101' → (same, same); '20240101-20240131', '-20240131', '20240101-'."""
    start, dash, end = pattern.partition("-")
    if not dash:
        return _date(start, "StudyDate"), start
    if not start and not end:
        raise BadQuery("StudyDate '-' names no date.")
    return (
        _date(start, "StudyDate") if start else "00000000",
        _date(end, "StudyDate") if end else "99999999",
    )


def date_bounds(pattern: str) -> tuple[str, str]:
    return _date_range(pattern)


def _values(attrs: dict, tag: str) -> list[str]:
    out = []
    for value in attrs.get(tag, {}).get("Value") or []:
        if isinstance(value, dict):
            value = value.get("Alphabetic", "")
        out.append(str(value))
    return out


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern:
    text = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.compile(text, re.IGNORECASE if ignore_case else 0)


def matches(attrs: dict, query: Query) -> bool:
    """Whether the DICOM JSON `attrs` meet every match of `query`."""
    return all(_match(attrs, tag, pattern) for tag, pattern in query.matches.items())


def _match(attrs: dict, tag: str, pattern: str) -> bool:
    values = _values(attrs, tag)
    vr = dictionary_VR(int(tag, 16))
    if vr == "DA":
        start, end = _date_range(pattern)
        return any(start <= v <= end for v in values)
    if vr == "PN":  # names: any case, wildcards; a single pattern (names hold commas)
        return any(_wildcard(pattern, ignore_case=True).fullmatch(v) for v in values)
    wanted = [p.strip() for p in re.split(r"[,\\]", pattern) if p.strip()]
    if vr in _NUMERIC:
        return any(_same_number(v, w) for v in values for w in wanted)
    return any(
        _wildcard(w, ignore_case=False).fullmatch(v) for v in values for w in wanted
    )


def _same_number(value: str, wanted: str) -> bool:
    try:
        return float(value) == float(wanted)
    except ValueError:
        return False
