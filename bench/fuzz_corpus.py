"""A deterministic corpus of malformed study uploads, generated from a few good files.

``corpus(seeds)`` returns :class:`Case` objects, the same ones for the same seeds on
every run (one ``random.Random(13)``): damaged DICOM (bit flips, truncation, wrong
transfer syntaxes, NaN/inf/huge header values, NUL and control characters in text,
zero/negative/huge sizes), mixed series, zip bombs, nested zips and hostile member
names, NIfTI with bad headers, damaged and huge-declared PNG/JPEG/TIFF/BMP, empty and
non-image files, hostile upload names and form fields, and 2,001-file requests.

``seeds_from_phantom(folder)`` takes the seeds from a real DICOM series (the bench
uses dicom-head-phantom); ``synthetic_seeds()`` makes small ones (the tests).
Nothing here is committed as binary: every byte is made by this code.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

#: A request whose file count passes UPLOAD_MAX_FILES (2,000 by default).
MANY_FILES = 2001


@dataclass(frozen=True)
class Case:
    """One upload: files (name, bytes) and optional form fields."""

    id: str
    family: str
    files: list[tuple[str, bytes]]
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seeds:
    dicom: list[bytes]  # one axial CT series, in order
    png: bytes
    jpeg: bytes
    nifti: bytes  # uncompressed NIfTI-1, int16


def _image(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **kw)
    return buffer.getvalue()


def _nifti(shape=(32, 32, 4)) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(np.full(shape, 40, np.int16), np.eye(4))
    return image.to_bytes()


def _gradient(size: int) -> np.ndarray:
    return (np.add.outer(np.arange(size), np.arange(size)) % 256).astype(np.uint8)


def seeds_from_phantom(folder: Path, *, slices: int = 6) -> Seeds:
    """The first ``slices`` DICOM files of a real series (sorted by name)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "DIRFILE")
    dicom = [p.read_bytes() for p in files[:slices]]
    return Seeds(
        dicom, _image(_gradient(64), "PNG"), _image(_gradient(64), "JPEG"), _nifti()
    )


def synthetic_seeds(*, slices: int = 4, size: int = 32) -> Seeds:
    """Small synthetic seeds: a CT phantom series written as DICOM."""
    import tempfile

    from ml.synthetic import make_phantom, write_dicom_series

    with tempfile.TemporaryDirectory() as tmp:
        phantom = make_phantom(size=size, slices=slices, seed=13)
        paths = write_dicom_series(phantom, Path(tmp) / "s", uid_seed="fuzz")
        dicom = [Path(p).read_bytes() for p in sorted(paths)]
    return Seeds(
        dicom, _image(_gradient(64), "PNG"), _image(_gradient(64), "JPEG"), _nifti()
    )


# --- DICOM ----------------------------------------------------------------------------
def _dcm(raw: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(raw), force=True)


def _save(ds: pydicom.Dataset) -> bytes | None:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=False)
    except Exception:  # a value pydicom cannot write: the caller skips the case
        return None
    return buffer.getvalue()


_LONG = "A" * 5000
_CONTROL = "x\x00y\x1b[31mred\x07\x08\x7f\x9b\n\r\tz"
#: keyword, VR, hostile values (pydicom writes them as given, validation off)
_TAG_VALUES: list[tuple[str, str, list]] = [
    ("RescaleSlope", "DS", ["NaN", "inf", "-inf", "1e308", "0", "-1e-300", "abc", ""]),
    ("RescaleIntercept", "DS", ["NaN", "-inf", "1e308", "xyz"]),
    ("Rows", "US", [0, 1, 65535, 4096]),
    ("Columns", "US", [0, 1, 65535, 3]),
    ("BitsAllocated", "US", [0, 1, 7, 12, 64, 65535]),
    ("BitsStored", "US", [0, 17, 33, 65535]),
    ("HighBit", "US", [0, 40, 65535]),
    ("PixelRepresentation", "US", [2, 65535]),
    ("SamplesPerPixel", "US", [0, 3, 4, 65535]),
    ("NumberOfFrames", "IS", ["1000000000", "0", "-1", "2", "abc", "99999999999999"]),
    (
        "PhotometricInterpretation",
        "CS",
        ["PALETTE COLOR", "YBR_FULL", "RGB", "", "\x00"],
    ),
    ("PixelSpacing", "DS", [["NaN", "NaN"], ["0", "0"], ["-1", "-1"], ["1e400", "1"]]),
    ("SliceThickness", "DS", ["NaN", "inf", "-5", "1e308"]),
    (
        "ImagePositionPatient",
        "DS",
        [["NaN", "0", "0"], ["inf", "-inf", "1e300"], ["1"]],
    ),
    (
        "ImageOrientationPatient",
        "DS",
        [["0"] * 6, ["NaN"] * 6, ["1", "0", "0", "1", "0", "0"], ["1e308"] * 6],
    ),
    ("WindowCenter", "DS", ["NaN", "inf"]),
    ("WindowWidth", "DS", ["NaN", "0", "-1"]),
    ("PatientName", "PN", [_CONTROL, _LONG, "../../etc/passwd", "/srv/x^y"]),
    ("PatientID", "LO", [_CONTROL, _LONG, "\x00\x00"]),
    ("PatientAge", "AS", ["999Y", "abcY", "-1Y", _CONTROL]),
    ("PatientSex", "CS", ["\x00", "Z" * 100]),
    ("StudyDate", "DA", ["99999999", "20241345", "abc", _CONTROL]),
    ("StudyTime", "TM", ["256161", "xx", _CONTROL]),
    ("StudyDescription", "LO", [_CONTROL, _LONG, "/srv/portal/var/files"]),
    ("SeriesDescription", "LO", [_CONTROL, "../../../x", _LONG]),
    ("Manufacturer", "LO", [_CONTROL, _LONG]),
    ("Modality", "CS", ["", "MR\x00", "SEG", "XX", "RTDOSE", _CONTROL]),
    ("StudyInstanceUID", "UI", ["1.2.\x00.3", "9" * 200, ""]),
    ("SeriesInstanceUID", "UI", ["\x1b", "1" * 100]),
    ("SOPInstanceUID", "UI", ["", "\x00"]),
    ("InstanceNumber", "IS", ["abc", "-99999999999", "NaN"]),
    ("SeriesNumber", "IS", ["xyz", "1e9"]),
]

_SYNTAXES = [
    "1.2.840.10008.1.2.4.50",  # JPEG baseline, data not JPEG
    "1.2.840.10008.1.2.4.90",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.2",  # big endian
    "1.2.840.10008.1.2.1.99",  # deflate
    "1.2.840.10008.1.2",  # implicit
    "1.2.840.10008.1.2.4.80",  # JPEG-LS
    "1.2.840.10008.1.2.4.201",  # HTJ2K
    "1.2.3.4.5.6",
    "",
    "\x00\x01",
]


def _dicom_tags(seeds: Seeds) -> Iterator[Case]:
    for keyword, vr, values in _TAG_VALUES:
        for j, value in enumerate(values):
            ds = _dcm(seeds.dicom[j % len(seeds.dicom)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds.add_new(keyword, vr, value)
                except Exception:  # noqa: S112 - pydicom refuses it: no such case
                    continue
            raw = _save(ds)
            if raw is not None:
                yield Case(f"tag-{keyword}-{j}", "dicom-tag", [(f"{keyword}.dcm", raw)])
                # The same damage on one slice of a good series.
                series = [(f"s{i:02d}.dcm", b) for i, b in enumerate(seeds.dicom[1:])]
                if j == 0:
                    yield Case(
                        f"tag-{keyword}-in-series",
                        "dicom-tag",
                        [*series, (f"bad-{keyword}.dcm", raw)],
                    )


def _dicom_syntax(seeds: Seeds) -> Iterator[Case]:
    for j, uid in enumerate(_SYNTAXES):
        ds = _dcm(seeds.dicom[j % len(seeds.dicom)])
        ds.file_meta.TransferSyntaxUID = uid
        raw = _save(ds)
        if raw is not None:
            yield Case(f"syntax-{j}", "dicom-syntax", [(f"syntax{j}.dcm", raw)])


def _bit_flips(rng: random.Random, seeds: Seeds, n: int) -> Iterator[Case]:
    for k in range(n):
        raw = bytearray(seeds.dicom[k % len(seeds.dicom)])
        header = k % 2 == 0  # half the flips land in the header, where they hurt
        for _ in range(rng.randint(1, 64)):
            at = rng.randrange(128, 2048) if header else rng.randrange(len(raw))
            raw[at] ^= 1 << rng.randrange(8)
        yield Case(f"flip-{k}", "dicom-bitflip", [(f"flip{k}.dcm", bytes(raw))])


def _truncations(rng: random.Random, seeds: Seeds, n: int) -> Iterator[Case]:
    fixed = [0, 1, 4, 128, 131, 132, 133, 200, 500, 1000]
    for k in range(n):
        raw = seeds.dicom[k % len(seeds.dicom)]
        cut = fixed[k] if k < len(fixed) else rng.randrange(len(raw))
        yield Case(f"cut-{k}", "dicom-truncated", [(f"cut{k}.dcm", raw[:cut])])


def _raw_dicom_bombs(seeds: Seeds) -> Iterator[Case]:
    raw = seeds.dicom[0]
    at = raw.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data
    if at > 0:
        for j, length in enumerate([0xFFFFFFF0, 0xFFFFFFFF, 0x7FFFFFFF, 3]):
            patched = bytearray(raw)
            patched[at + 8 : at + 12] = struct.pack("<I", length)
            yield Case(
                f"pixlen-{j}", "dicom-bomb", [(f"pixlen{j}.dcm", bytes(patched))]
            )
    yield Case("preamble-only", "dicom-bomb", [("pre.dcm", bytes(128) + b"DICM")])
    yield Case(
        "dicm-garbage", "dicom-bomb", [("g.dcm", bytes(128) + b"DICM" + b"\xff" * 999)]
    )


def _mixed(seeds: Seeds) -> Iterator[Case]:
    series = [(f"s{i:02d}.dcm", b) for i, b in enumerate(seeds.dicom)]
    other = _dcm(seeds.dicom[0])
    other.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    mr = _dcm(seeds.dicom[1])
    mr.Modality = "MR"
    mr.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.998"
    sag = _dcm(seeds.dicom[2])
    sag.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    extras = {
        "other-study": _save(other),
        "mr-series": _save(mr),
        "sagittal": _save(sag),
        "png": seeds.png,
        "nifti": seeds.nifti,
        "junk": b"not an image at all",
        "empty": b"",
    }
    for key, extra in extras.items():
        if extra is not None:
            yield Case(f"mixed-{key}", "mixed", [*series, (f"{key}.bin", extra)])
    yield Case("mixed-duplicates", "mixed", series + series[:2])
    yield Case(
        "mixed-all-kinds",
        "mixed",
        [series[0], ("a.png", seeds.png), ("v.nii", seeds.nifti)],
    )
    yield Case("mixed-png-jpeg", "mixed", [("1.png", seeds.png), ("2.jpg", seeds.jpeg)])


# --- zips -----------------------------------------------------------------------------
def _zip(
    members: list[tuple[str | zipfile.ZipInfo, bytes]], *, deflate: bool = True
) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, content in members:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            info.compress_type = method
            zf.writestr(info, content)
    return buffer.getvalue()


_MEMBER_NAMES = [
    "../../etc/passwd.dcm",
    "/abs/slice.dcm",
    "C:\\Windows\\x.dcm",
    "a/../../b.dcm",
    "ok\x1b[2J\x07.dcm",
    "tab\tnew\nline.dcm",
    "del\x7f\x9b.dcm",
    "n" * 1000 + ".dcm",
    ("deep/" * 200) + "x.dcm",
    "\u202eevil.dcm",  # right-to-left override
    "..",
    ".",
    "",
    " ",
    "/private/upload-x/leak.dcm",
    "__MACOSX/._x.dcm",
    ".DS_Store",
]


def _zips(rng: random.Random, seeds: Seeds) -> Iterator[Case]:
    series = [(f"s{i:02d}.dcm", b) for i, b in enumerate(seeds.dicom)]
    for j, name in enumerate(_MEMBER_NAMES):
        yield Case(
            f"zipname-{j}", "zip-names", [("names.zip", _zip([(name, seeds.dicom[0])]))]
        )
        renamed = [(f"{name}{i}", b) for i, (_, b) in enumerate(series)]
        yield Case(f"zipname-series-{j}", "zip-names", [("series.zip", _zip(renamed))])
    zeros = bytes(64 * 1024 * 1024)
    yield Case(
        "zip-bomb-ratio", "zip-bomb", [("bomb.zip", _zip([("zeros.dcm", zeros)]))]
    )
    yield Case(
        "zip-bomb-many",
        "zip-bomb",
        [
            (
                "bomb.zip",
                _zip([(f"z{i}.dcm", bytes(8 * 1024 * 1024)) for i in range(40)]),
            )
        ],
    )
    yield Case(
        "zip-bomb-beside-series",
        "zip-bomb",
        [("b.zip", _zip([*series, ("z.dcm", zeros)]))],
    )
    inner = _zip(series)
    nested = _zip([("inner.zip", inner)])
    yield Case("zip-nested-2", "zip-nested", [("n.zip", nested)])
    yield Case("zip-nested-3", "zip-nested", [("n.zip", _zip([("n2.zip", nested)]))])
    deep = inner
    for _ in range(10):
        deep = _zip([("d.zip", deep)])
    yield Case("zip-nested-10", "zip-nested", [("deep.zip", deep)])
    yield Case(
        "zip-self-ish",
        "zip-nested",
        [("q.zip", _zip([("q.zip", b"PK\x03\x04" + bytes(40))]))],
    )
    yield Case("zip-empty", "zip-broken", [("empty.zip", _zip([]))])
    yield Case(
        "zip-dirs-only", "zip-broken", [("d.zip", _zip([("a/", b""), ("b/", b"")]))]
    )
    good = _zip(series)
    for k, cut in enumerate(
        [4, 30, 100, len(good) // 2, len(good) - 22, len(good) - 1]
    ):
        yield Case(f"zip-cut-{k}", "zip-broken", [("cut.zip", good[:cut])])
    for k in range(20):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(len(raw))
            raw[at] ^= 1 << rng.randrange(8)
        yield Case(f"zip-flip-{k}", "zip-broken", [("flip.zip", bytes(raw))])
    link = zipfile.ZipInfo("link.dcm")
    link.external_attr = (0o120777) << 16
    yield Case("zip-symlink", "zip-broken", [("l.zip", _zip([(link, b"/etc/passwd")]))])
    enc = bytearray(_zip([("locked.dcm", seeds.dicom[0])]))
    enc[6] |= 1
    at = enc.find(b"PK\x01\x02")
    enc[at + 8] |= 1
    yield Case("zip-encrypted", "zip-broken", [("enc.zip", bytes(enc))])
    many = _zip([(f"m{i:05d}.txt", b"x") for i in range(MANY_FILES)], deflate=False)
    yield Case("zip-2001-members", "zip-many", [("many.zip", many)])
    tail = bytearray(_zip([("a.dcm", b"x")]))
    eocd = tail.rfind(b"PK\x05\x06")
    tail[eocd + 8 : eocd + 12] = struct.pack("<HH", 65535, 65535)
    tail[eocd + 12 : eocd + 16] = struct.pack("<I", 0xFFFFFFF0)
    yield Case("zip-eocd-lies", "zip-broken", [("lies.zip", bytes(tail))])
    yield Case(
        "zip-non-images",
        "zip-broken",
        [("txt.zip", _zip([("a.txt", b"hello"), ("b.pdf", b"%PDF-1.4")]))],
    )


# --- NIfTI ----------------------------------------------------------------------------
def _nifti_edits(seeds: Seeds) -> Iterator[Case]:
    base = seeds.nifti
    # (offset, struct format, values): NIfTI-1 header fields
    edits = [
        ("sizeof_hdr", 0, "<i", [0, -1, 540, 1 << 30]),
        (
            "dim",
            40,
            "<8h",
            [
                (0,) * 8,
                (3, 32767, 32767, 32767, 1, 1, 1, 1),
                (3, -1, 32, 4, 1, 1, 1, 1),
                (7, 32, 32, 4, 32767, 32767, 1, 1),
                (3, 0, 0, 0, 1, 1, 1, 1),
                (8, 1, 1, 1, 1, 1, 1, 1),
            ],
        ),
        ("datatype", 70, "<h", [0, 1, 32, 128, 1536, 2304, -1, 255]),
        ("bitpix", 72, "<h", [0, 3, 1024]),
        (
            "pixdim",
            76,
            "<8f",
            [
                (1.0, float("nan"), 1, 1, 1, 0, 0, 0),
                (1.0, float("inf"), -1, 0, 1, 0, 0, 0),
                (1.0, 1e38, 1e38, 1e38, 1, 0, 0, 0),
            ],
        ),
        ("vox_offset", 108, "<f", [float("nan"), -352.0, 1e12, 0.0, 353.5]),
        ("scl_slope", 112, "<f", [float("nan"), float("inf"), 1e38, 0.0]),
        ("scl_inter", 116, "<f", [float("-inf"), float("nan")]),
        ("qform_code", 252, "<h", [-5, 999]),
        ("quatern", 256, "<6f", [(float("nan"),) * 6, (1e38,) * 6]),
        ("srow_x", 280, "<4f", [(float("nan"),) * 4, (0.0,) * 4]),
        ("magic", 344, "4s", [b"n+2\x00", b"\x00\x00\x00\x00", b"ni1\x00"]),
    ]
    for field_name, offset, fmt, values in edits:
        for j, value in enumerate(values):
            raw = bytearray(base)
            packed = struct.pack(
                fmt, *(value if isinstance(value, tuple) else (value,))
            )
            raw[offset : offset + len(packed)] = packed
            if field_name == "qform_code" or field_name == "srow_x":
                raw[254:256] = struct.pack("<h", 1)  # sform_code: use the srow
            blob = bytes(raw)
            yield Case(f"nifti-{field_name}-{j}", "nifti", [("v.nii", blob)])
            if j == 0:
                yield Case(
                    f"nifti-gz-{field_name}",
                    "nifti",
                    [("v.nii.gz", gzip.compress(blob))],
                )
    descrip = bytearray(base)
    descrip[148:228] = (_CONTROL.encode("latin-1", "replace") * 10)[:80]
    yield Case("nifti-descrip", "nifti", [("d.nii", bytes(descrip))])
    for k, cut in enumerate([0, 100, 347, 348, 352, 400, len(base) - 1]):
        yield Case(f"nifti-cut-{k}", "nifti", [("c.nii", base[:cut])])
        yield Case(
            f"nifti-gz-cut-{k}",
            "nifti",
            [("c.nii.gz", gzip.compress(base)[: max(cut // 4, 2)])],
        )
    yield Case(
        "nifti-gz-garbage", "nifti", [("g.nii.gz", gzip.compress(b"garbage" * 100))]
    )
    big = bytearray(base)
    big[40:56] = struct.pack("<8h", 3, 4096, 4096, 30, 1, 1, 1, 1)
    header_only = bytes(big[:352])
    yield Case(
        "nifti-gz-4096-bomb",
        "nifti",
        [("b.nii.gz", gzip.compress(header_only + bytes(4096 * 4096 * 2 * 2)))],
    )
    yield Case("nifti-declares-4096", "nifti", [("b.nii", header_only)])


# --- images ---------------------------------------------------------------------------
def _png_header(width: int, height: int, *, depth: int = 8, colour: int = 0) -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _images(rng: random.Random, seeds: Seeds) -> Iterator[Case]:
    for j, (w, h) in enumerate(
        [
            (100000, 100000),
            (65535, 1),
            (1, 65535),
            (0, 0),
            (2**31 - 1, 2**31 - 1),
            (5000, 5000),
            (4097, 4096),
        ]
    ):
        yield Case(
            f"png-declares-{j}", "image-huge", [(f"h{j}.png", _png_header(w, h))]
        )
    for j, (depth, colour) in enumerate(
        [(16, 0), (1, 0), (8, 3), (16, 6), (3, 0), (8, 5)]
    ):
        yield Case(
            f"png-ihdr-{j}",
            "image-huge",
            [(f"i{j}.png", _png_header(64, 64, depth=depth, colour=colour))],
        )
    black = _image(np.zeros((4096, 4096), np.uint8), "PNG")
    yield Case(
        "png-4096-black-x30",
        "image-amplification",
        [(f"{i:02d}.png", black) for i in range(30)],
    )
    cut_first = [("00.png", black[:-40])] + [
        (f"{i:02d}.png", black) for i in range(1, 30)
    ]
    yield Case("png-4096-black-x30-first-cut", "image-amplification", cut_first)
    yield Case(
        "png-4096x2048-x3",
        "image-amplification",
        [
            (f"{i}.png", _image(np.zeros((2048, 4096), np.uint8), "PNG"))
            for i in range(3)
        ],
    )
    yield Case(
        "jpeg-4096-x5",
        "image-amplification",
        [
            (f"{i}.jpg", _image(np.zeros((4096, 4096), np.uint8), "JPEG"))
            for i in range(5)
        ],
    )
    for k in range(40):
        src = seeds.png if k % 2 == 0 else seeds.jpeg
        raw = bytearray(src)
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(8 if k % 2 == 0 else 2, len(raw))
            raw[at] ^= 1 << rng.randrange(8)
        ext = "png" if k % 2 == 0 else "jpg"
        yield Case(f"image-flip-{k}", "image-bitflip", [(f"f{k}.{ext}", bytes(raw))])
    for k in range(16):
        src = seeds.png if k % 2 == 0 else seeds.jpeg
        cut = rng.randrange(len(src))
        yield Case(f"image-cut-{k}", "image-truncated", [(f"c{k}.img", src[:cut])])
    jpeg = bytearray(seeds.jpeg)
    sof = jpeg.find(b"\xff\xc0")
    if sof > 0:
        for j, (h, w) in enumerate([(65535, 65535), (0, 0), (1, 65535)]):
            patched = bytearray(jpeg)
            patched[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
            yield Case(f"jpeg-sof-{j}", "image-huge", [(f"s{j}.jpg", bytes(patched))])
    pages = io.BytesIO()
    frames = [Image.fromarray(_gradient(16)) for _ in range(300)]
    frames[0].save(pages, "TIFF", save_all=True, append_images=frames[1:])
    yield Case("tiff-300-pages", "image-other", [("p.tif", pages.getvalue())])
    for fmt, ext in [
        ("BMP", "bmp"),
        ("TIFF", "tif"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("ICO", "ico"),
    ]:
        try:
            blob = _image(_gradient(64), fmt)
        except Exception:  # noqa: S112 - this Pillow cannot write it: no such case
            continue
        yield Case(f"format-{ext}", "image-other", [(f"x.{ext}", blob)])
    bmp = bytearray(_image(_gradient(64), "BMP"))
    bmp[18:26] = struct.pack("<ii", 100000, -100000)
    yield Case("bmp-huge", "image-huge", [("h.bmp", bytes(bmp))])
    for mode in ("RGBA", "CMYK", "I;16", "P", "1"):
        image = Image.fromarray(_gradient(64)).convert(mode if mode != "I;16" else "I")
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        buffer = io.BytesIO()
        try:
            (image.convert("I;16") if mode == "I;16" else image).save(buffer, fmt)
        except Exception:  # noqa: S112 - this Pillow cannot write it: no such case
            continue
        yield Case(
            f"mode-{mode}", "image-other", [(f"m.{fmt.lower()}", buffer.getvalue())]
        )
    yield Case(
        "sizes-differ",
        "image-other",
        [("1.png", seeds.png), ("2.png", _image(_gradient(32), "PNG"))],
    )


# --- everything else ------------------------------------------------------------------
_JUNK = {
    "empty.dcm": b"",
    "one.dcm": b"\x00",
    "hello.dcm": b"hello world",
    "pdf.dcm": b"%PDF-1.7\n" + bytes(200),
    "html.png": b"<html><script>alert(1)</script></html>",
    "elf.nii": b"\x7fELF" + bytes(100),
    "json.dcm": b'{"a": 1}',
    "gzip.dcm": gzip.compress(b"not nifti" * 50),
    "bz2.dcm": b"BZh91AY&SY" + bytes(50),
    "rar.zip": b"Rar!\x1a\x07\x00" + bytes(50),
    "7z.zip": b"7z\xbc\xaf\x27\x1c" + bytes(50),
    "utf16.dcm": "DICM".encode("utf-16"),
    "nul.png": bytes(1000),
    "ff.jpg": b"\xff" * 1000,
}


def _junk(rng: random.Random) -> Iterator[Case]:
    for name, blob in _JUNK.items():
        yield Case(f"junk-{name}", "junk", [(name, blob)])
    yield Case("junk-all-empty", "junk", [(f"e{i}.dcm", b"") for i in range(5)])
    for k in range(20):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
        ext = ("dcm", "png", "jpg", "nii", "nii.gz", "zip", "")[k % 7]
        yield Case(f"random-{k}", "junk", [(f"r{k}.{ext}", blob)])


_UPLOAD_NAMES = [
    "../../etc/passwd",
    "..\\..\\boot.ini",
    "/tmp/upload-abc/00000_x.dcm",  # noqa: S108 - a name, as a spooled file's
    "C:\\x\\y.dcm",
    "nul\x00byte.dcm",
    "esc\x1b[31m.dcm",
    "n" * 5000 + ".dcm",
    "\u202egpj.exe",
    "emoji-🧠.dcm",
    "%00%2e%2e%2f.dcm",
    "<script>alert(1)</script>.dcm",
    "..",
    " ",
]


def _names(seeds: Seeds) -> Iterator[Case]:
    for j, name in enumerate(_UPLOAD_NAMES):
        yield Case(f"uploadname-{j}", "upload-names", [(name, seeds.dicom[0])])
        yield Case(f"uploadname-junk-{j}", "upload-names", [(name, b"junk")])


_FIELDS = [
    {"patient_id": "\x00"},
    {"patient_id": "x" * 1000},
    {"patient_age": "-1"},
    {"patient_age": "1e309"},
    {"patient_age": "NaN"},
    {"patient_sex": "\x00"},
    {"symptom_onset": "9999-99-99T99:99"},
    {"symptom_onset": "0000-00-00"},
    {"clinical_notes": "\x00" * 10},
    {"clinical_notes": "y" * 100000},
]


def _fields(seeds: Seeds) -> Iterator[Case]:
    for j, fields in enumerate(_FIELDS):
        yield Case(f"field-{j}", "form-fields", [("s.dcm", seeds.dicom[0])], fields)


def _many() -> Iterator[Case]:
    yield Case(
        "files-2001", "many-files", [(f"{i:05d}.dcm", b"x") for i in range(MANY_FILES)]
    )
    yield Case(
        "files-2001-empty",
        "many-files",
        [(f"{i:05d}.png", b"") for i in range(MANY_FILES)],
    )
    yield Case("files-none", "many-files", [])


def corpus(seeds: Seeds) -> list[Case]:
    """Every case, in a fixed order, made from ``seeds``."""
    rng = random.Random(13)
    families = [
        _dicom_tags(seeds),
        _dicom_syntax(seeds),
        _bit_flips(rng, seeds, 150),
        _truncations(rng, seeds, 60),
        _raw_dicom_bombs(seeds),
        _mixed(seeds),
        _zips(rng, seeds),
        _nifti_edits(seeds),
        _images(rng, seeds),
        _junk(rng),
        _names(seeds),
        _fields(seeds),
        _many(),
    ]
    cases = [case for family in families for case in family]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases
