"""Tell a file's type from its first bytes, never from its name."""

from __future__ import annotations

import gzip
import io
import struct
import zlib

#: Enough bytes for every check below (DICOM preamble, NIfTI-1 magic, tar magic).
HEAD_BYTES = 1024

_EXPECTED = "not a DICOM, PNG, JPEG, BMP, TIFF or NIfTI file"
_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}
_DICOM_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
    b"LT", b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ",
    b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT",
    b"UV",
}  # fmt: skip
_OTHER_KINDS = (
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"RIFF", "a RIFF (WebP/AVI/WAV) file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image (not a DICOM)"),
)


def sniff(head: bytes) -> str | None:
    """Kind of a file from its first :data:`HEAD_BYTES` bytes.

    Returns one of "dicom", "dicom-raw" (no preamble), "png", "jpeg", "bmp", "tiff",
    "nifti", "gzip" (NIfTI or not: see :func:`sniff_gzip`) or "zip"; None otherwise.
    """
    for kind, test in _TESTS:
        if test(head):
            return kind
    return None


def sniff_gzip(head: bytes) -> bool:
    """True when gzip-compressed ``head`` starts a NIfTI-1 or NIfTI-2 header."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(head)) as f:
            inner = f.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error):
        inner = _partial_gunzip(head)
    return is_nifti(inner)


def describe(head: bytes) -> str:
    """Reason for rejecting a file of unknown type, naming what it looks like."""
    if not head:
        return "empty file (0 bytes)"
    return f"{_EXPECTED} ({_looks_like(head)})"


def is_nifti(head: bytes) -> bool:
    """True when ``head`` starts a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header."""
    if len(head) < 348:
        return False
    size_le, size_be = (
        struct.unpack("<i", head[:4])[0],
        struct.unpack(">i", head[:4])[0],
    )
    if 348 in (size_le, size_be):
        return head[344:348] in (b"n+1\0", b"ni1\0")
    return 540 in (size_le, size_be) and head[4:8] in (b"n+2\0", b"ni2\0")


def _partial_gunzip(head: bytes) -> bytes:
    # A head cut mid-stream cannot finish a GzipFile read; a raw decompressor can.
    try:
        return zlib.decompressobj(wbits=31).decompress(head, HEAD_BYTES)
    except zlib.error:
        return b""


def _is_dicom_preamble(head: bytes) -> bool:
    return head[128:132] == b"DICM"


def _is_dicom_raw(head: bytes) -> bool:
    """A DICOM data set written without preamble starts with a group 2 or 8 tag."""
    return len(head) >= 8 and any(_starts_data_set(head, order) for order in "<>")


def _starts_data_set(head: bytes, order: str) -> bool:
    group, element = struct.unpack(f"{order}HH", head[:4])
    if group not in (0x0002, 0x0008) or element >= 0x0100:
        return False
    if head[4:6] in _DICOM_VRS:
        return True
    # Implicit VR (little endian only): a 4-byte length follows the tag.
    return order == "<" and struct.unpack("<I", head[4:8])[0] < 0x10000


def _is_bmp(head: bytes) -> bool:
    return head[:2] == b"BM" and len(head) >= 18 and _dib_size(head) in _BMP_DIB_SIZES


def _dib_size(head: bytes) -> int:
    return struct.unpack("<I", head[14:18])[0]


def _is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


_TESTS = (
    ("dicom", _is_dicom_preamble),
    ("png", lambda h: h[:8] == b"\x89PNG\r\n\x1a\n"),
    ("jpeg", lambda h: h[:3] == b"\xff\xd8\xff"),
    ("tiff", lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    ("bmp", _is_bmp),
    ("zip", _is_zip),
    ("gzip", lambda h: h[:2] == b"\x1f\x8b"),
    ("nifti", is_nifti),
    ("dicom-raw", _is_dicom_raw),
)


def _looks_like(head: bytes) -> str:
    for magic, what in _OTHER_KINDS:
        if head.startswith(magic):
            return f"looks like {what}"
    if head[257:262] == b"ustar":
        return "looks like a tar archive; upload a zip instead"
    if _is_text(head):
        return f"looks like text: {_text_excerpt(head)!r}"
    return f"content starts with {_byte_excerpt(head)!r}"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\r\n\t\f" for c in text)


def _text_excerpt(head: bytes) -> str:
    text = head.decode("utf-8", errors="ignore").strip()
    return text[:30] + ("..." if len(text) > 30 else "")


def _byte_excerpt(head: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in head[:4])
