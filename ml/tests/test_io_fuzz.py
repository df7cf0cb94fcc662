"""ml.io never crashes on damaged input: it returns a study or a StudyLoadError."""

import gzip
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ml.io import LoadLimits, StudyLoadError, load_study
from ml.tests.io_factories import (
    ct_slice,
    dicom_bytes,
    enhanced_ct,
    save_nifti,
    zip_bytes,
)

_SMALL = LoadLimits(max_total_bytes=64 * 1024**2, max_file_bytes=16 * 1024**2)
# Damaged files make pydicom and Pillow warn by design; the outcome is what counts.
pytestmark = pytest.mark.filterwarnings("ignore")
_FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _nifti_bytes():
    with tempfile.TemporaryDirectory() as folder:
        path = save_nifti(
            Path(folder) / "v.nii",
            np.arange(60, dtype=np.int16).reshape(5, 4, 3),
            affine=np.eye(4),
        )
        return path.read_bytes()


def _image_bytes(format_name):
    buffer = io.BytesIO()
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(pixels).save(buffer, format=format_name)
    return buffer.getvalue()


def _rle_bytes():
    ds = ct_slice(hu=40.0)
    ds.compress("1.2.840.10008.1.2.5")
    return dicom_bytes(ds)


_VALID = {
    "dicom": dicom_bytes(ct_slice(hu=40.0)),
    "dicom-rle": _rle_bytes(),
    "dicom-enhanced": dicom_bytes(enhanced_ct(zs=[0.0, 2.0, 4.0])),
    "nifti": _nifti_bytes(),
    "nifti-gz": gzip.compress(_nifti_bytes()),
    "zip": zip_bytes({"a.dcm": dicom_bytes(ct_slice(hu=40.0))}),
    "png": _image_bytes("PNG"),
    "jpeg": _image_bytes("JPEG"),
    "tiff": _image_bytes("TIFF"),
    "bmp": _image_bytes("BMP"),
}


def _load_or_refuse(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.bin"
        path.write_bytes(content)
        try:
            result = load_study(path, limits=_SMALL)
        except StudyLoadError as exc:
            assert exc.rejected or "no files" in str(exc)
        else:
            assert result.volume.shape[0] == len(result.slices) > 0


@pytest.mark.parametrize("kind", sorted(_VALID))
@_FUZZ
@given(data=st.data())
def test_load_study_survives_damaged_files(kind, data):
    content = bytearray(_VALID[kind])
    cut = data.draw(st.integers(0, len(content)), label="keep bytes")
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, max(0, cut - 1)), st.integers(0, 255)), max_size=8
        ),
        label="flips",
    )
    content = content[:cut]
    for at, value in flips:
        if at < len(content):
            content[at] = value

    _load_or_refuse(bytes(content))


@_FUZZ
@given(content=st.binary(max_size=2048))
def test_load_study_survives_arbitrary_bytes(content):
    _load_or_refuse(content)
