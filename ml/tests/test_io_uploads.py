"""ml.io on whole uploads: zips, mixed kinds, hostile and broken input, limits.

Whatever arrives, load_study returns a study or raises StudyLoadError naming the
files and reasons; it never crashes, hangs or writes outside its own temp folder.
"""

import stat
import zipfile

import numpy as np
import pytest

from ml.io import LoadLimits, StudyLoadError, check_upload, load_study
from ml.tests.io_factories import (
    ct_series,
    ct_slice,
    dicom_bytes,
    mark_encrypted,
    save_image,
    zip_bytes,
)


def _slices(n):
    """``n`` DICOM slices as zip members, slice i at z = 5 i reading 100 i HU."""
    return {
        f"study/IM{i}.dcm": dicom_bytes(ct_slice(hu=100.0 * i, z=5.0 * i, instance=i))
        for i in range(n)
    }


def _reasons(error_or_result):
    return {r.name: r.reason for r in error_or_result.rejected}


def _write(path, content):
    path.write_bytes(content)
    return path


def test_load_study_reads_a_zipped_series_in_order(tmp_path):
    members = dict(reversed(_slices(3).items()))
    upload = _write(tmp_path / "upload.zip", zip_bytes(members))

    result = load_study(upload)

    assert result.volume[:, 0, 0].tolist() == [0.0, 100.0, 200.0]
    assert result.consumed == [f"upload.zip/study/IM{i}.dcm" for i in range(3)]


def test_load_study_reads_a_zip_whatever_its_name(tmp_path):
    upload = _write(tmp_path / "scan.dcm", zip_bytes(_slices(2)))

    assert len(load_study(upload).slices) == 2


def test_load_study_reads_one_level_of_nested_zip_and_refuses_deeper(tmp_path):
    inner = zip_bytes(_slices(2))
    deeper = zip_bytes({"deeper.zip": zip_bytes({"x.dcm": b"never read"})})
    outer = zip_bytes({"inner.zip": inner, "nest.zip": deeper})
    upload = _write(tmp_path / "outer.zip", outer)

    result = load_study(upload)

    assert len(result.slices) == 2
    assert _reasons(result)["outer.zip/nest.zip/deeper.zip"] == (
        "zip inside a zip inside a zip; only one level of nested zips is read"
    )


def test_load_study_skips_system_files_silently(tmp_path):
    members = _slices(2) | {
        "__MACOSX/study/._IM0.dcm": b"\x00\x05\x16\x07",
        "study/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "Thumbs.db": b"\xd0\xcf\x11\xe0",
    }
    upload = _write(tmp_path / "mac.zip", zip_bytes(members))

    result = load_study(upload)

    assert len(result.slices) == 2 and result.rejected == []


def test_load_study_rejects_unsafe_encrypted_and_linked_zip_members(tmp_path):
    upload = tmp_path / "evil.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        for name, content in _slices(2).items():
            zf.writestr(name, content)
        zf.writestr("../../etc/cron.d/evil", b"* * * * * root rm -rf /")
        zf.writestr("/abs/path.dcm", b"x")
        zf.writestr("locked.dcm", b"x")
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    upload.write_bytes(mark_encrypted(upload.read_bytes(), member="locked.dcm"))

    result = load_study(upload)
    reasons = _reasons(result)

    assert len(result.slices) == 2
    # Named without the path tricks: ml.io.text.clean_name.
    assert reasons["evil.zip/etc/cron.d/evil"].startswith("unsafe path in zip")
    assert reasons["evil.zip/abs/path.dcm"].startswith("unsafe path in zip")
    assert reasons["evil.zip/locked.dcm"].startswith("encrypted (password-protected)")
    assert reasons["evil.zip/link.dcm"] == "symbolic link in zip; not followed"
    assert not (tmp_path.parent / "etc").exists()


def test_load_study_refuses_a_zip_bomb_by_ratio(tmp_path):
    bomb = zip_bytes(_slices(2) | {"zeros.dcm": bytes(20 * 1024 * 1024)})
    upload = _write(tmp_path / "bomb.zip", bomb)

    result = load_study(upload)

    assert len(result.slices) == 2
    reason = _reasons(result)["bomb.zip/zeros.dcm"]
    assert reason.startswith("compressed ") and "(possible zip bomb)" in reason


def test_load_study_refuses_a_zip_that_would_pass_the_total_size(tmp_path):
    upload = _write(tmp_path / "big.zip", zip_bytes(_slices(3)))
    limits = LoadLimits(max_total_bytes=2000)

    with pytest.raises(StudyLoadError) as caught:
        load_study(upload, limits=limits)

    reason = _reasons(caught.value)["big.zip"]
    assert reason.startswith("zip would expand to ") and "possible zip bomb" in reason


def test_load_study_stops_at_the_declared_size_of_a_lying_member(tmp_path):
    raw = bytearray(zip_bytes({"liar.dcm": bytes(4096)} | _slices(2)))
    central = raw.index(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (16).to_bytes(4, "little")  # says 16 bytes
    upload = _write(tmp_path / "liar.zip", bytes(raw))

    result = load_study(upload)

    assert len(result.slices) == 2
    assert _reasons(result)["liar.zip/liar.dcm"].startswith("corrupt zip member")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (zip_bytes({}), "empty zip file (no files inside)"),
        (b"PK\x03\x04" + bytes(60), "corrupt or incomplete zip file"),
    ],
    ids=["empty", "corrupt"],
)
def test_load_study_explains_an_unusable_zip(tmp_path, content, reason):
    upload = _write(tmp_path / "upload.zip", content)

    with pytest.raises(StudyLoadError) as caught:
        load_study(upload)

    assert caught.value.rejected[0].name == "upload.zip"
    assert caught.value.rejected[0].reason.startswith(reason)
    assert f"upload.zip: {reason}" in str(caught.value)


def test_load_study_limits_the_number_of_files(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0, 15.0])

    result = load_study(tmp_path, limits=LoadLimits(max_files=3))

    assert len(result.slices) == 3
    [rejected] = result.rejected
    assert rejected.reason == (
        "more than 3 files in the upload; this and any later files were not read"
    )


def test_load_study_refuses_a_zip_with_too_many_files(tmp_path):
    upload = _write(tmp_path / "many.zip", zip_bytes(_slices(5)))

    with pytest.raises(StudyLoadError, match="zip holds 5 files; an upload may hold"):
        load_study(upload, limits=LoadLimits(max_files=4))


def test_load_study_refuses_a_huge_zip_directory_before_reading_it(tmp_path):
    entries = {f"f{i}": b"" for i in range(120)}
    upload = _write(tmp_path / "entries.zip", zip_bytes(entries, deflate=False))

    with pytest.raises(StudyLoadError) as caught:
        load_study(upload, limits=LoadLimits(max_files=2))

    assert caught.value.rejected[0].reason.startswith("zip lists about ")


def test_load_study_refuses_too_many_slices_with_a_clear_error(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0])

    with pytest.raises(StudyLoadError, match="the study has 3 slices; at most 2"):
        load_study(tmp_path, limits=LoadLimits(max_slices=2))


def test_load_study_refuses_a_file_above_the_size_limit(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])

    with pytest.raises(StudyLoadError, match="the limit per file is 100 bytes"):
        load_study(tmp_path, limits=LoadLimits(max_file_bytes=100))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (
            b"patient: 12\nfindings: none\n",
            "not a DICOM, PNG, JPEG, BMP, TIFF or NIfTI file "
            "(looks like text: 'patient: 12\\nfindings: none')",
        ),
        (b"%PDF-1.7\n" + bytes(100), "(looks like a PDF document)"),
        (b"\x00\x01\x02\x03garbage", "(content starts with '....')"),
        (b"\x1f\x8b\x08\x00" + bytes(40), "gzip-compressed file that is not a NIfTI"),
    ],
    ids=["empty", "text", "pdf", "binary", "gzip"],
)
def test_load_study_names_what_an_unreadable_file_is(tmp_path, content, reason):
    _write(tmp_path / "scan.dcm", content)

    with pytest.raises(StudyLoadError) as caught:
        load_study(tmp_path / "scan.dcm")

    assert caught.value.rejected[0].name == "scan.dcm"
    assert reason in caught.value.rejected[0].reason


def test_load_study_keeps_the_kind_with_most_slices_in_a_mixed_upload(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0, 10.0])
    save_image(tmp_path / "photo.png", np.zeros((8, 8), np.uint8))

    result = load_study(tmp_path)

    assert result.metadata.source_kind == "dicom"
    assert _reasons(result)[f"{tmp_path.name}/photo.png"] == (
        "mixed upload: the study was read from the 3 DICOM slices; "
        "PNG/JPEG/BMP/TIFF files are not used with them"
    )


def test_study_load_error_names_the_first_files_and_counts_the_rest(tmp_path):
    for i in range(7):
        _write(tmp_path / f"note{i}.txt", b"hello")

    with pytest.raises(StudyLoadError) as caught:
        load_study(tmp_path)

    message = str(caught.value)
    assert message.startswith("no usable slices in the upload (")
    assert f"{tmp_path.name}/note0.txt: not a DICOM" in message
    assert message.endswith("; and 2 more file(s) set aside)")
    assert len(caught.value.rejected) == 7


def test_load_study_raises_for_an_empty_or_missing_upload(tmp_path):
    with pytest.raises(StudyLoadError, match="the upload holds no files"):
        load_study(tmp_path)
    with pytest.raises(StudyLoadError, match="no such file or folder"):
        load_study(tmp_path / "gone")


def test_load_study_uses_the_names_the_user_knows(tmp_path):
    [stored] = ct_series(tmp_path, zs=[0.0], names=["3f9a0c.bin"])

    result = load_study([stored], names={str(stored): "head.dcm"})

    assert result.consumed == ["head.dcm"]


def test_check_upload_validates_without_decoding(tmp_path):
    ct_series(tmp_path, zs=[0.0, 5.0])
    scout = ct_slice(z=0.0)
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.save_as(tmp_path / "scout.dcm", enforce_file_format=True)

    check = check_upload(tmp_path)

    assert (check.kind, check.shape) == ("dicom", (2, 16, 16))
    assert [r.name.split("/")[-1] for r in check.rejected] == ["scout.dcm"]


def test_load_study_cleans_up_its_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    upload = _write(tmp_path / "upload.zip", zip_bytes(_slices(2)))

    load_study(upload)

    assert list((tmp_path / "tmp").iterdir()) == []
