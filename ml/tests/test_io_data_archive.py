"""Zips of training data: unpacked with their folders, refused whole when one
member is unsafe, and checked from the directory before anything is written."""

import zipfile

import pytest

from ml.io.archive import data_archive_check, extract_data_archive
from ml.io.limits import LoadLimits


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_keeps_class_folders_and_starts_below_a_lone_top_folder(tmp_path):
    archive = make_zip(
        tmp_path / "data.zip",
        {
            "brain-ct/Normal/1 (1).png": b"a",
            "brain-ct/Stroke/2 (1).png": b"bb",
            "__MACOSX/brain-ct/Normal/._1 (1).png": b"x",
            "brain-ct/.DS_Store": b"x",
        },
    )
    out = extract_data_archive(archive, tmp_path / "out", limits=LoadLimits())
    assert out.root == tmp_path / "out" / "brain-ct"
    assert out.files == 2
    assert (out.root / "Stroke" / "2 (1).png").read_bytes() == b"bb"
    assert not (tmp_path / "out" / "__MACOSX").exists()


def test_a_path_trick_refuses_the_whole_archive_naming_the_member(tmp_path):
    archive = make_zip(
        tmp_path / "evil.zip", {"Normal/1.png": b"a", "../../etc/cron.d/x": b"b"}
    )
    problems = data_archive_check(archive, limits=LoadLimits())
    assert problems and "../../etc/cron.d/x" in problems[0]
    assert "unsafe path" in problems[0]
    with pytest.raises(ValueError, match="unsafe path"):
        extract_data_archive(archive, tmp_path / "out", limits=LoadLimits())
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "etc").exists()


def test_declared_size_over_the_limit_is_refused_before_unpacking(tmp_path):
    archive = make_zip(tmp_path / "big.zip", {"Normal/1.png": b"\0" * 5000})
    problems = data_archive_check(
        archive, limits=LoadLimits(max_total_bytes=4000, max_files=10)
    )
    assert problems and "would expand to" in problems[0]


def test_not_a_zip_and_an_empty_zip_are_named(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    assert "not a readable zip" in data_archive_check(junk, limits=LoadLimits())[0]
    empty = make_zip(tmp_path / "empty.zip", {"__MACOSX/._a": b"x"})
    assert "empty zip" in data_archive_check(empty, limits=LoadLimits())[0]
