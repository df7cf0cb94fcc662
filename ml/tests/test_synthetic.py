"""Tests for ml.synthetic: phantom densities, lesions, DICOM/PNG writers."""

import csv

import cv2
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from ml.synthetic import (
    COMPRESSIONS,
    HU_CSF,
    LABELS,
    make_phantom,
    phantom_montage,
    synthesize_dataset,
    write_dicom_series,
    write_mask,
    write_png_slices,
)

SIZE, SLICES = 128, 12


@pytest.fixture(scope="module")
def phantoms():
    """One small phantom of each lesion kind."""
    kinds = [
        ("normal", None),
        ("ischemic", "infarct"),
        ("hemorrhagic", "intraparenchymal"),
        ("hemorrhagic", "subdural"),
    ]
    return {
        lesion or label: make_phantom(
            label=label, lesion=lesion, size=SIZE, slices=SLICES, seed=3
        )
        for label, lesion in kinds
    }


def _middle(phantom):
    return phantom.volume_hu[SLICES // 2 + 1]


def test_phantom_shapes_dtypes_and_spacing(phantoms):
    phantom = phantoms["normal"]
    assert phantom.volume_hu.shape == (SLICES, SIZE, SIZE)
    assert phantom.volume_hu.dtype == np.float32
    assert phantom.mask.dtype == bool and phantom.brain_mask.dtype == bool
    assert not phantom.mask.any() and phantom.label == "normal"
    dz, dy, dx = phantom.spacing
    assert 5 < dz < 15 and dy == dx == pytest.approx(240 / SIZE)


def test_phantom_tissue_densities_are_head_ct_like(phantoms):
    phantom = phantoms["normal"]
    hu = _middle(phantom)
    corner = hu[:8, :8]
    assert abs(float(corner.mean()) + 1000) < 10  # air
    assert 1000 < hu.max() < 1700  # cortical bone
    brain = phantom.brain_mask[SLICES // 2 + 1]
    inner = ndimage.binary_erosion(brain, iterations=4)
    assert 20 < float(np.median(hu[inner])) < 40  # grey/white matter
    bone = (hu > 300) & ~brain
    assert bone.sum() > 200 and 500 < float(np.median(hu[bone])) < 1500


def test_phantom_has_dark_ventricles_in_mid_slices(phantoms):
    phantom = phantoms["normal"]
    centre = SIZE // 2
    depth_profile = [
        float(np.percentile(s[centre - 15 : centre + 15, centre - 15 : centre + 15], 5))
        for s in phantom.volume_hu
    ]
    assert min(depth_profile) < HU_CSF + 12  # CSF somewhere near the centre


def test_head_outline_shrinks_towards_the_vertex(phantoms):
    area = (phantoms["normal"].volume_hu > -500).sum(axis=(1, 2))
    assert area[-1] < 0.7 * area.max()
    assert area.argmax() not in (0, SLICES - 1)


@pytest.mark.parametrize("kind", ["infarct", "intraparenchymal", "subdural"])
def test_lesion_mask_is_inside_the_brain_and_spans_slices(phantoms, kind):
    phantom = phantoms[kind]
    assert phantom.mask.any()
    assert not (phantom.mask & ~phantom.brain_mask).any()
    assert (phantom.mask.sum(axis=(1, 2)) > 0).sum() >= 2


def _lesion_vs_surround(phantom):
    k = int(phantom.mask.sum(axis=(1, 2)).argmax())
    mask, hu, brain = phantom.mask[k], phantom.volume_hu[k], phantom.brain_mask[k]
    core = ndimage.binary_erosion(mask, iterations=1) | (mask & ~mask.any())
    ring = ndimage.binary_dilation(mask, iterations=8) & ~ndimage.binary_dilation(
        mask, iterations=3
    )
    ring &= ndimage.binary_erosion(brain, iterations=3) & (hu > 15) & (hu < 50)
    return float(np.median(hu[core if core.any() else mask])), float(
        np.median(hu[ring])
    )


@pytest.mark.parametrize("kind", ["intraparenchymal", "subdural"])
def test_hemorrhage_is_hyperdense(phantoms, kind):
    lesion, surround = _lesion_vs_surround(phantoms[kind])
    assert 50 <= lesion <= 90
    assert lesion > surround + 15


def test_infarct_is_hypodense(phantoms):
    lesion, surround = _lesion_vs_surround(phantoms["infarct"])
    assert 10 <= lesion <= 24
    assert lesion < surround - 5


def test_phantom_is_deterministic_by_seed():
    first = make_phantom(label="hemorrhagic", size=64, slices=4, seed=9)
    again = make_phantom(label="hemorrhagic", size=64, slices=4, seed=9)
    other = make_phantom(label="hemorrhagic", size=64, slices=4, seed=10)
    np.testing.assert_array_equal(first.volume_hu, again.volume_hu)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert not np.array_equal(first.volume_hu, other.volume_hu)


def test_lesion_appears_even_in_a_very_short_stack():
    for seed in range(5):
        phantom = make_phantom(label="ischemic", size=64, slices=3, seed=seed)
        assert phantom.mask.any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "tumour"}, "label"),
        ({"size": 16}, "size"),
        ({"slices": 0}, "slices"),
        ({"label": "ischemic", "lesion": "subdural"}, "lesion"),
    ],
)
def test_make_phantom_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_phantom(**kwargs)


def _read_series(paths):
    return [pydicom.dcmread(p) for p in paths]


def _hu(datasets):
    return np.stack(
        [
            ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            for ds in datasets
        ]
    )


def test_dicom_series_has_consistent_headers(phantoms, tmp_path):
    phantom = phantoms["intraparenchymal"]
    datasets = _read_series(write_dicom_series(phantom, tmp_path, patient_id="P1"))
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == SLICES
    first = datasets[0]
    assert first.SOPClassUID == pydicom.uid.CTImageStorage
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.PatientID == "P1" and first.Modality == "CT"
    assert float(first.RescaleIntercept) == -1024 and float(first.RescaleSlope) == 1
    assert [float(v) for v in first.PixelSpacing] == pytest.approx(phantom.spacing[1:])
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert np.allclose(np.diff(z), phantom.spacing[0], atol=1e-3)
    assert float(first.SliceThickness) == pytest.approx(phantom.spacing[0])
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, SLICES + 1))


@pytest.mark.parametrize("signed", [False, True])
def test_dicom_pixels_round_trip_to_hu(phantoms, tmp_path, signed):
    phantom = phantoms["subdural"]
    datasets = _read_series(write_dicom_series(phantom, tmp_path, signed=signed))
    assert datasets[0].pixel_array.dtype == (np.int16 if signed else np.uint16)
    np.testing.assert_array_equal(_hu(datasets), np.rint(phantom.volume_hu))


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_compressed_series_decode_to_the_same_hu(phantoms, tmp_path, compression):
    phantom = phantoms["infarct"]
    paths = write_dicom_series(
        phantom, tmp_path, transfer_syntax=compression, uid_seed="s"
    )
    datasets = _read_series(paths)
    assert datasets[0].file_meta.TransferSyntaxUID == COMPRESSIONS[compression]
    np.testing.assert_array_equal(_hu(datasets), np.rint(phantom.volume_hu))


def test_uid_seed_makes_uids_reproducible(phantoms, tmp_path):
    phantom = phantoms["normal"]
    first = _read_series(write_dicom_series(phantom, tmp_path / "a", uid_seed="x"))
    again = _read_series(write_dicom_series(phantom, tmp_path / "b", uid_seed="x"))
    assert [d.SOPInstanceUID for d in first] == [d.SOPInstanceUID for d in again]
    assert first[0].StudyInstanceUID == again[0].StudyInstanceUID


def test_unsupported_transfer_syntax_is_rejected(phantoms, tmp_path):
    with pytest.raises(ValueError, match="transfer syntax"):
        write_dicom_series(phantoms["normal"], tmp_path, transfer_syntax="jpeg-lossy")


def test_dicom_series_round_trips_through_ml_io(phantoms, tmp_path):
    io = pytest.importorskip("ml.io")
    if not hasattr(io, "load_study"):
        pytest.skip("ml.io.load_study is not available yet")
    phantom = phantoms["intraparenchymal"]
    paths = write_dicom_series(phantom, tmp_path, transfer_syntax="rle")
    result = io.load_study(list(reversed(paths)))
    assert result.metadata.units == "HU"
    np.testing.assert_allclose(result.volume, np.rint(phantom.volume_hu), atol=0.5)


def test_png_slices_are_brain_windowed_and_named_like_the_kaggle_set(
    phantoms, tmp_path
):
    phantom = phantoms["normal"]
    paths = write_png_slices(phantom, tmp_path, scan_number=7)
    assert [p.name for p in paths[:2]] == ["7 (1).png", "7 (2).png"]
    image = cv2.imread(str(paths[5]), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE)
    expected = np.clip(np.rint(phantom.volume_hu[5] / 80 * 255), 0, 255)
    np.testing.assert_allclose(image, expected, atol=1)


@pytest.mark.parametrize("fmt", ["npy", "png"])
def test_masks_are_written(phantoms, tmp_path, fmt):
    phantom = phantoms["subdural"]
    paths = write_mask(phantom, tmp_path, fmt=fmt, scan_number=3)
    if fmt == "npy":
        np.testing.assert_array_equal(np.load(paths[0]), phantom.mask)
    else:
        assert paths[0].parent.name == "masks" and len(paths) == SLICES
        stack = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
        np.testing.assert_array_equal(stack > 0, phantom.mask)


def test_montage_has_one_row_per_phantom(phantoms):
    montage = phantom_montage(list(phantoms.values()), columns=3, outline=True)
    assert montage.shape == (4 * SIZE, 3 * SIZE, 3) and montage.dtype == np.uint8


def test_synthesize_dataset_writes_balanced_labels_and_layout(tmp_path):
    records = synthesize_dataset(
        tmp_path, studies=6, seed=2, size=48, slices=3, fmt="both", compression="mixed"
    )
    assert sorted(r.label for r in records) == sorted(LABELS * 2)
    with (tmp_path / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["study"] for r in rows] == [r.study for r in records]
    assert {r["compression"] for r in rows} == {"none", *COMPRESSIONS}
    first = tmp_path / rows[0]["path"]
    assert first.parent.name == rows[0]["label"]
    assert len(list((first / "dicom").glob("*.dcm"))) == 3
    assert (first / "png" / f"{rows[0]['scan_number']} (1).png").exists()
    assert (first / "mask.npy").exists()
    header = pydicom.dcmread(next((first / "dicom").glob("*.dcm")))
    assert header.StudyInstanceUID == rows[0]["study_uid"]


def test_synthesize_dataset_is_reproducible(tmp_path):
    first = synthesize_dataset(tmp_path / "a", studies=3, seed=5, size=48, slices=2)
    again = synthesize_dataset(tmp_path / "b", studies=3, seed=5, size=48, slices=2)
    assert first == again
