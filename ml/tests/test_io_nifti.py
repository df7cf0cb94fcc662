"""ml.io on NIfTI: any stored orientation comes out as radiological axial slices.

A marker voxel is placed at a known anatomical spot (right, anterior, superior
corner region) and must land where a radiologist expects it: volume[k] is slice k
from the feet up, row 0 is anterior and column 0 is the patient's right.
"""

import gzip

import numpy as np
import pytest

from ml.io import StudyLoadError, load_study
from ml.tests.io_factories import save_nifti

NX, NY, NZ = 8, 6, 5


def _ras_volume():
    """RAS+ array (i to the right, j anterior, k superior) with a marker."""
    data = np.zeros((NX, NY, NZ), np.int16)
    data[6, 4, 3] = 100  # right of centre, anterior, upper slice
    return data


def _assert_marker_in_radiological_place(volume):
    assert volume.shape == (NZ, NY, NX)
    k, row, column = np.unravel_index(np.argmax(volume), volume.shape)
    assert k == 3  # 4th slice from the feet
    assert row == NY - 1 - 4  # anterior is up
    assert column == NX - 1 - 6  # the patient's right is on the viewer's left


def test_load_study_reads_a_ras_nifti_in_radiological_layout(tmp_path):
    affine = np.diag([0.8, 0.9, 3.0, 1.0])
    save_nifti(tmp_path / "head.nii", _ras_volume(), affine=affine)

    result = load_study(tmp_path / "head.nii")

    _assert_marker_in_radiological_place(result.volume)
    assert result.metadata.source_kind == "nifti"
    assert result.metadata.pixel_spacing_mm == pytest.approx((0.9, 0.8))
    assert result.metadata.slice_spacing_mm == pytest.approx(3.0)
    assert [s.position_mm for s in result.slices] == pytest.approx([0, 3, 6, 9, 12])


def test_load_study_reorients_an_lps_nifti_stored_feet_last(tmp_path):
    # The same anatomy stored left-to-right flipped, posterior first, head first.
    stored = _ras_volume()[::-1, ::-1, ::-1]
    affine = np.diag([-0.8, -0.9, -3.0, 1.0])
    affine[:3, 3] = [(NX - 1) * 0.8, (NY - 1) * 0.9, (NZ - 1) * 3.0]
    save_nifti(tmp_path / "head.nii.gz", stored, affine=affine)

    result = load_study(tmp_path / "head.nii.gz")

    _assert_marker_in_radiological_place(result.volume)


def test_load_study_reorients_a_nifti_with_swapped_axes(tmp_path):
    stored = _ras_volume().transpose(2, 0, 1)  # stored as (k, i, j)
    affine = np.zeros((4, 4))
    affine[0, 1], affine[1, 2], affine[2, 0], affine[3, 3] = 0.8, 0.9, 3.0, 1
    save_nifti(tmp_path / "head.nii", stored, affine=affine)

    _assert_marker_in_radiological_place(load_study(tmp_path / "head.nii").volume)


def test_load_study_detects_gzipped_nifti_by_content(tmp_path):
    save_nifti(tmp_path / "head.nii.gz", _ras_volume(), affine=np.eye(4))
    (tmp_path / "head.nii.gz").rename(tmp_path / "export.dat")

    result = load_study(tmp_path / "export.dat")

    _assert_marker_in_radiological_place(result.volume)


def test_load_study_labels_ct_like_nifti_as_hu(tmp_path):
    ct = np.full((NX, NY, NZ), -1000, np.int16)
    ct[2:6, 2:4, :] = 40
    ct[2, 2, :] = 1200
    save_nifti(tmp_path / "ct.nii", ct, affine=np.eye(4))
    save_nifti(tmp_path / "mr.nii", _ras_volume(), affine=np.eye(4))

    assert load_study(tmp_path / "ct.nii").metadata.units == "HU"
    assert load_study(tmp_path / "mr.nii").metadata.units == "intensity"


def test_load_study_reads_the_first_volume_of_4d_nifti_with_a_warning(tmp_path):
    series = np.stack([_ras_volume(), _ras_volume() * 0 + 7], axis=-1)
    save_nifti(tmp_path / "fmri.nii", series, affine=np.eye(4))

    result = load_study(tmp_path / "fmri.nii")

    _assert_marker_in_radiological_place(result.volume)
    assert result.warnings == [
        "fmri.nii has shape (8, 6, 5, 2); only the first volume was read"
    ]


def test_load_study_keeps_the_nifti_with_most_slices(tmp_path):
    save_nifti(tmp_path / "a.nii", _ras_volume(), affine=np.eye(4))
    save_nifti(tmp_path / "b.nii", _ras_volume()[:, :, :2], affine=np.eye(4))

    result = load_study(tmp_path)

    assert result.volume.shape[0] == NZ
    assert [r.name for r in result.rejected] == [f"{tmp_path.name}/b.nii"]
    assert "upload one study" in result.rejected[0].reason


def test_load_study_refuses_nifti_dimensions_beyond_limits_from_the_header(tmp_path):
    save_nifti(tmp_path / "x.nii", _ras_volume(), affine=np.eye(4))
    raw = bytearray((tmp_path / "x.nii").read_bytes())
    raw[42:48] = np.array([30000, 30000, 5], "<i2").tobytes()  # dim[1..3]
    (tmp_path / "x.nii").write_bytes(bytes(raw))

    with pytest.raises(StudyLoadError) as caught:
        load_study(tmp_path / "x.nii")

    assert "at most 16777216 pixels per slice" in caught.value.rejected[0].reason


def test_load_study_sets_aside_a_truncated_nifti(tmp_path):
    noise = np.random.default_rng(0).integers(0, 999, (NX, NY, NZ), dtype=np.int16)
    save_nifti(tmp_path / "x.nii", noise, affine=np.eye(4))
    data = (tmp_path / "x.nii").read_bytes()
    (tmp_path / "x.nii").write_bytes(data[:400])
    compressed = gzip.compress(data)
    (tmp_path / "y.nii.gz").write_bytes(compressed[: len(compressed) - 100])

    with pytest.raises(StudyLoadError) as caught:
        load_study([tmp_path / "x.nii", tmp_path / "y.nii.gz"])

    reasons = {r.name: r.reason for r in caught.value.rejected}
    assert reasons["x.nii"].startswith("truncated NIfTI file: 400 bytes where")
    assert reasons["y.nii.gz"].startswith("corrupt NIfTI file")
