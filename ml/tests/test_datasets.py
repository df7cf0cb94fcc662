"""Tests for ml.datasets: grouping, duplicates, manifests and leak-free splits."""

import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.datasets import (
    ManifestRow,
    check_group_labels,
    class_counts,
    cross_group_pairs,
    grouped_kfold,
    grouped_train_val_test,
    index_folder,
    merge_split_groups,
    read_manifest,
    split_group_labels,
    write_manifest,
)
from ml.synthetic import make_phantom, write_dicom_series, write_png_slices

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KAGGLE = SHARED_DATA / "brain-stroke-ct"


def _png_scan(root, folder, number, *, seed, slices=3):
    label = "normal" if folder.lower() == "normal" else "ischemic"
    phantom = make_phantom(label=label, size=64, slices=slices, seed=seed)
    return write_png_slices(phantom, root / folder, scan_number=number)


@pytest.fixture
def png_folder(tmp_path):
    """Kaggle-like layout: Normal/ scans 1-3, Stroke/ scans 4-5, 3 slices each."""
    for number in (1, 2, 3):
        _png_scan(tmp_path, "Normal", number, seed=number)
    for number in (4, 5):
        _png_scan(tmp_path, "Stroke", number, seed=number)
    return tmp_path


def test_index_groups_png_slices_by_scan_number(png_folder):
    result = index_folder(png_folder)
    assert len(result.rows) == 15
    by_path = {r.path: r for r in result.rows}
    assert by_path["Normal/1 (2).png"].group == "scan 1"
    assert by_path["Stroke/4 (3).png"].label == "stroke"
    assert class_counts(result.rows) == {"normal": (9, 3, 3), "stroke": (6, 2, 2)}
    assert result.duplicates.exact == [] and not cross_group_pairs(
        result.rows, result.duplicates
    )
    assert all(len(r.sha256) == 64 and len(r.phash) == 16 for r in result.rows)


def test_index_reads_dicom_groups_from_headers(tmp_path):
    for number, label in enumerate(["hemorrhagic", "ischemic", "normal"], start=1):
        phantom = make_phantom(label=label, size=64, slices=3, seed=number)
        folder = tmp_path / label.upper() / f"study{number}"
        write_dicom_series(phantom, folder, patient_id=f"P{number}", uid_seed="t")
    (tmp_path / "normal_notes.txt").write_text("not an image")
    result = index_folder(tmp_path)
    groups = {r.label: r.group for r in result.rows}
    assert set(groups) == {"hemorrhagic", "ischemic", "normal"}
    assert groups["ischemic"].startswith("P2/1.2.")
    assert len({r.group for r in result.rows}) == 3


def test_custom_group_regex_and_unmatched_files_warn(png_folder):
    shutil.copy(png_folder / "Normal" / "1 (1).png", png_folder / "Normal" / "odd.png")
    result = index_folder(png_folder, group_regex=r"^(?P<group>\d+) ")
    groups = {r.path: r.group for r in result.rows}
    assert groups["Normal/2 (3).png"] == "scan 2"
    assert groups["Normal/odd.png"] == "file Normal/odd.png"
    assert any("do not match the group pattern" in w for w in result.warnings)


def test_group_regex_without_named_group_is_rejected(png_folder):
    with pytest.raises(ValueError, match="named group"):
        index_folder(png_folder, group_regex=r"(\d+)")


def test_group_with_two_labels_is_an_error_naming_it(png_folder):
    _png_scan(png_folder, "Stroke", 2, seed=99)  # scan 2 now appears in both classes
    with pytest.raises(ValueError, match="'scan 2'"):
        index_folder(png_folder)


def test_exact_and_near_duplicates_join_one_split_group(png_folder):
    source = png_folder / "Normal" / "1 (2).png"
    shutil.copy(source, png_folder / "Normal" / "3 (9).png")
    image = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 3, image.shape)
    noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
    cv2.imwrite(str(png_folder / "Stroke" / "5 (9).jpg"), noisy)
    result = index_folder(png_folder)
    assert result.duplicates.exact == [("Normal/1 (2).png", "Normal/3 (9).png")]
    near = {(a, b) for a, b, _, _ in result.duplicates.near}
    assert ("Normal/1 (2).png", "Stroke/5 (9).jpg") in near
    split_of = {r.path: r.split_group for r in result.rows}
    merged = ("Normal/1 (1).png", "Normal/3 (1).png", "Stroke/5 (1).png")
    assert {split_of[p] for p in merged} == {"scan 1"}
    assert split_of["Normal/2 (1).png"] == "scan 2"
    assert any("different labels" in w for w in result.warnings)
    for fold in grouped_kfold(result.rows, k=2, seed=0):
        _assert_no_leak(result.rows, fold.train, fold.val)


def test_different_patients_are_not_near_duplicates(png_folder):
    result = index_folder(png_folder, near_threshold=64)  # every pair is a candidate
    assert not cross_group_pairs(result.rows, result.duplicates)


def test_manifest_round_trips_through_csv(png_folder, tmp_path):
    rows = index_folder(png_folder).rows
    path = tmp_path / "manifest.csv"
    write_manifest(rows, path)
    assert read_manifest(path) == rows
    assert path.read_text().splitlines()[0] == (
        "path,label,group,split_group,sha256,phash"
    )


def test_read_manifest_rejects_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("path,label\na.png,normal\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_manifest(path)


def test_index_of_a_folder_without_class_folders_fails(tmp_path):
    _png_scan(tmp_path, "scans", 1, seed=1)
    with pytest.raises(ValueError, match="class folders"):
        index_folder(tmp_path)


# --- splits -----------------------------------------------------------------------


def _rows(groups_and_labels, per_group=3):
    return [
        ManifestRow(f"{g}/{k}.png", label, g, "0" * 64, "0" * 16, split_group=g)
        for g, label in groups_and_labels
        for k in range(per_group)
    ]


def _sides(rows, indices):
    return {rows[i].split_group for i in indices}


def _assert_no_leak(rows, *sides):
    seen = [_sides(rows, side) for side in sides]
    for a in range(len(seen)):
        for b in range(a + 1, len(seen)):
            assert not seen[a] & seen[b]


def test_kfold_is_reproducible_and_covers_everything():
    rows = _rows([(f"g{i}", "stroke" if i % 3 else "normal") for i in range(20)])
    folds = grouped_kfold(rows, k=4, seed=1)
    assert folds == grouped_kfold(rows, k=4, seed=1)
    assert folds != grouped_kfold(rows, k=4, seed=2)
    assert sorted(i for f in folds for i in f.val) == list(range(len(rows)))


def test_train_val_test_fractions_and_reproducibility():
    rows = _rows([(f"g{i}", "normal") for i in range(20)])
    split = grouped_train_val_test(rows, fractions=(0.6, 0.2, 0.2), seed=3)
    assert [len(_sides(rows, s)) for s in (split.train, split.val, split.test)] == [
        12,
        4,
        4,
    ]
    assert split == grouped_train_val_test(rows, fractions=(0.6, 0.2, 0.2), seed=3)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)])
def test_train_val_test_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        grouped_train_val_test(_rows([("g", "normal")]), fractions=fractions, seed=0)


def test_kfold_rejects_more_folds_than_groups():
    with pytest.raises(ValueError, match="k must be"):
        grouped_kfold(_rows([("a", "normal"), ("b", "normal")]), k=3, seed=0)


def test_check_group_labels_names_the_group():
    rows = _rows([("scan 7", "normal")]) + _rows([("scan 7", "stroke")])
    with pytest.raises(ValueError, match="'scan 7'"):
        check_group_labels(rows)


@st.composite
def manifests(draw):
    """Random groups of 1-4 images with labels, plus random duplicate links."""
    n_groups = draw(st.integers(min_value=3, max_value=30))
    label = st.sampled_from(["normal", "ischemic", "hemorrhagic"])
    labels = draw(st.lists(label, min_size=n_groups, max_size=n_groups))
    sizes = draw(st.lists(st.integers(1, 4), min_size=n_groups, max_size=n_groups))
    rows = [
        ManifestRow(f"g{g}/{k}.png", labels[g], f"g{g:02d}", "0" * 64, "0" * 16)
        for g in range(n_groups)
        for k in range(sizes[g])
    ]
    index = st.integers(0, len(rows) - 1)
    links = draw(st.lists(st.tuples(index, index), max_size=5))
    return merge_split_groups(rows, links), links


def _per_label_group_counts(rows, indices):
    label_of = split_group_labels(rows)
    return Counter(label_of[g] for g in {rows[i].split_group for i in indices})


@settings(max_examples=150, deadline=None)
@given(data=manifests(), k=st.integers(2, 5), seed=st.integers(0, 2**32 - 1))
def test_kfold_never_leaks_a_group_or_duplicate_cluster(data, k, seed):
    rows, links = data
    n_split_groups = len({r.split_group for r in rows})
    if k > n_split_groups:
        return
    folds = grouped_kfold(rows, k=k, seed=seed)
    for fold in folds:
        _assert_no_leak(rows, fold.train, fold.val)
        assert sorted(fold.train + fold.val) == list(range(len(rows)))
        for a, b in links:  # linked duplicates sit on the same side
            assert (a in fold.val) == (b in fold.val)
    assert sorted(i for f in folds for i in f.val) == list(range(len(rows)))
    per_fold = [_per_label_group_counts(rows, f.val) for f in folds]
    for label in {r.label for r in rows}:
        counts = [c[label] for c in per_fold]
        assert max(counts) - min(counts) <= 1  # stratified by group label


@settings(max_examples=150, deadline=None)
@given(data=manifests(), seed=st.integers(0, 2**32 - 1))
def test_train_val_test_never_leaks_and_is_stratified(data, seed):
    rows, links = data
    split = grouped_train_val_test(rows, fractions=(0.6, 0.2, 0.2), seed=seed)
    sides = (split.train, split.val, split.test)
    _assert_no_leak(rows, *sides)
    assert sorted(split.train + split.val + split.test) == list(range(len(rows)))
    for a, b in links:
        assert [a in s for s in sides] == [b in s for s in sides]
    totals = _per_label_group_counts(rows, range(len(rows)))
    for side, fraction in zip(sides, (0.6, 0.2, 0.2), strict=True):
        counts = _per_label_group_counts(rows, side)
        for label, total in totals.items():
            assert abs(counts[label] - fraction * total) < 1


# --- the real data set, when it is beside the project ------------------------------


@pytest.fixture(scope="module")
def kaggle_index():
    if not KAGGLE.is_dir():
        pytest.skip(f"{KAGGLE} is absent (shared data is not part of the project)")
    return index_folder(KAGGLE)


@pytest.mark.slow
def test_brain_stroke_ct_has_82_scans_51_normal_31_stroke(kaggle_index):
    counts = class_counts(kaggle_index.rows)
    assert counts["normal"][:2] == (1551, 51)
    assert counts["stroke"][:2] == (950, 31)
    assert not kaggle_index.warnings


@pytest.mark.slow
def test_brain_stroke_ct_folds_keep_scans_whole(kaggle_index):
    rows = kaggle_index.rows
    for fold in grouped_kfold(rows, k=5, seed=0):
        assert not {rows[i].group for i in fold.train} & {
            rows[i].group for i in fold.val
        }
        stroke_scans = _per_label_group_counts(rows, fold.val)["stroke"]
        assert 6 <= stroke_scans <= 7
