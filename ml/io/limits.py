"""Limits that keep a hostile or mistaken upload from exhausting memory or time."""

from __future__ import annotations

from dataclasses import dataclass, fields

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class LoadLimits:
    """Upper bounds on one upload.

    ``max_total_bytes`` caps the bytes read after decompression (files plus zip
    members) and also the decoded float32 volume. ``max_zip_ratio`` is the largest
    uncompressed/compressed size ratio accepted for a zip member of 1 MiB or more.
    ``max_side`` is not a refusal: slices whose longest side is longer are read
    reduced to it (see :mod:`ml.io.resample`). ``max_study_pixels`` caps the
    study's pixels as read (slices x height x width, after that reduction), and
    for NIfTI, read whole before it is reduced, its voxels as stored.
    """

    max_files: int = 2000
    max_total_bytes: int = 2 * GiB
    max_file_bytes: int = 512 * MiB
    max_pixels_per_slice: int = 4096 * 4096
    max_slices: int = 2000
    max_zip_ratio: float = 200.0
    max_side: int = 1024
    #: Decoded for a web request's check when its spot check fails: about 256 slices
    #: of 512 x 512 (under a second). Larger uploads set aside what failed and check
    #: the rest again; the full read names any other damage.
    max_check_pixels: int = 64 * 1024 * 1024
    #: 1,500 slices of a standard 512 x 512 CT: a 1.5 GiB float32 volume.
    max_study_pixels: int = 1500 * 512 * 512

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"LoadLimits.{f.name} must be positive")


def check_pixels(*, rows: int, columns: int, limits: LoadLimits) -> None:
    """Raise LimitExceeded when one slice of ``rows`` x ``columns`` is too large."""
    if rows * columns > limits.max_pixels_per_slice:
        raise LimitExceeded(
            f"image is {columns}x{rows} pixels; at most "
            f"{limits.max_pixels_per_slice} pixels per slice can be read"
        )


def format_pixels(n: int) -> str:
    """``format_pixels(n=393_216_000) == '393.2 million pixels'``."""
    if n >= 10**6:
        return f"{n / 10**6:.1f} million pixels"
    return f"{n} pixels"


def format_bytes(n: int) -> str:
    """Human-readable size: ``format_bytes(n=3 * MiB) == '3.0 MiB'``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


class LimitExceeded(ValueError):
    """A limit was passed; the message is the reason to show the user."""


class ByteBudget:
    """Counts decompressed bytes of one upload against ``max_total_bytes``."""

    def __init__(self, *, limit: int):
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def take(self, n: int) -> None:
        """Spend ``n`` bytes; raises LimitExceeded if that passes the limit."""
        if n > self.remaining:
            raise LimitExceeded(
                f"reading it would pass the {format_bytes(self.limit)} limit "
                "for one upload"
            )
        self.used += n
