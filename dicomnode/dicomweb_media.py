"""How DICOMweb answers are sent (PS3.18 8.7): the Accept header read and matched
against what the portal can give, the multipart/related bodies of WADO-RS streamed
one part at a time, and a frame's uncompressed pixels."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import UID

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# Stored pixel data in these is the frame's bytes as PS3.18 sends them.
_NATIVE_LITTLE_ENDIAN = {EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN}
DICOM_JSON = "application/dicom+json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict
    q: float


def _split(text: str, separator: str) -> list[str]:
    """`text` split on `separator` outside double quotes."""
    return [
        p.strip() for p in re.split(rf'{separator}(?=(?:[^"]*"[^"]*")*[^"]*$)', text)
    ]


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header, most wanted first (q=0 left out)."""
    ranges = []
    for item in _split(header or "", ","):
        if not item:
            continue
        kind, *params = _split(item, ";")
        values = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append(MediaRange(kind.lower(), values, q))
    return sorted(ranges, key=lambda r: -r.q) or [MediaRange("*/*", {}, 1.0)]


def accepts_json(header: str) -> bool:
    wanted = {DICOM_JSON, "application/json", "application/*", "*/*"}
    return any(r.type in wanted for r in parse_accept(header))


def _part_type(media: MediaRange, part: str) -> bool:
    """Whether `media` accepts multipart/related with `part` parts (or `part`
    alone, which a multipart answer of one part satisfies too)."""
    if media.type == part or media.type == "*/*":
        return True
    if media.type in ("multipart/related", "multipart/*"):
        inner = media.params.get("type", "").lower()
        return inner in ("", part, part.split("/")[0] + "/*", "*/*")
    return False


def _decodable(syntax: str) -> bool:
    try:
        return get_decoder(UID(syntax)).is_available
    except (NotImplementedError, ValueError):
        return False


def dicom_syntax(header: str, stored: set[str]) -> str | None:
    """The transfer syntax to send instances stored in `stored` syntaxes in, as the
    Accept header asks: "*" (as stored), a UID they all have or can be decompressed
    to; None when the portal cannot give what is asked (a 406). No transfer-syntax
    means Explicit VR Little Endian (PS3.18 8.7.3.5.2); "*/*" means as stored."""
    for media in parse_accept(header):
        if not _part_type(media, "application/dicom"):
            continue
        default = "*" if media.type == "*/*" else EXPLICIT_VR_LITTLE_ENDIAN
        wanted = media.params.get("transfer-syntax", default)
        if wanted == "*" or stored <= {wanted}:
            return wanted
        if wanted == EXPLICIT_VR_LITTLE_ENDIAN and all(
            s in _NATIVE_LITTLE_ENDIAN or _decodable(s) for s in stored
        ):
            return wanted
    return None


def frames_acceptable(header: str) -> bool:
    """Whether the Accept header takes uncompressed frames (the only kind the
    portal sends: Explicit VR Little Endian pixel bytes)."""
    return any(
        _part_type(media, "application/octet-stream")
        and media.params.get("transfer-syntax", "*") in ("*", EXPLICIT_VR_LITTLE_ENDIAN)
        for media in parse_accept(header)
    )


# --- Bodies ----------------------------------------------------------------------
def multipart(
    parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """A multipart/related body, one part (content type, chunks) after another."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def instance_bytes(path: Path, *, stored: str, wanted: str) -> Iterable[bytes]:
    """The stored file's bytes, as stored or decompressed to Explicit VR Little
    Endian (one instance in memory at a time)."""
    if wanted == "*" or stored == wanted:
        return file_chunks(path)
    return _decompressed(path)


def _decompressed(path: Path) -> Iterator[bytes]:
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    else:
        ds.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    yield buffer.getvalue()


def frame_numbers(text: str) -> list[int]:
    """'1' or '1,3,5' → [1, 3, 5]; ValueError for anything else."""
    numbers = [p.strip() for p in text.split(",")]
    if not numbers or not all(p.isdigit() and int(p) >= 1 for p in numbers):
        raise ValueError(f"frame numbers are 1 or more, comma-separated: {text!r}")
    return [int(p) for p in numbers]


def frames(path: Path, numbers: list[int]) -> list[bytes]:
    """Frames `numbers` (1-based) of a stored instance as uncompressed little-endian
    pixel bytes (rows * columns * samples * bytes per sample each); IndexError
    naming the first frame it does not have."""
    ds = pydicom.dcmread(path)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    missing = [n for n in numbers if n > count]
    if missing or "PixelData" not in ds:
        raise IndexError(missing[0] if missing else numbers[0])
    if (
        ds.file_meta.TransferSyntaxUID in _NATIVE_LITTLE_ENDIAN
        and ds.BitsAllocated >= 8
    ):
        size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        data = ds.PixelData
        return [bytes(data[(n - 1) * size : n * size]) for n in numbers]
    pixels = ds.pixel_array if count > 1 else ds.pixel_array[None]
    little = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    return [little[n - 1].tobytes() for n in numbers]
