"""Write ct-ich patients as CT DICOM series, so the portal can be shown a real bleed
the way a scanner would send it: Hounsfield units, pixel spacing, slice positions.

ct-ich has no DICOM: its slices are 8-bit PNGs already in the brain window (level 40,
width 120: 0 is -20 HU, 255 is +100 HU) with no spacing. This script turns each PNG
back into HU (value / 255 * 120 - 20, rounded to whole HU as a scanner stores them;
everything the window clipped stays clipped, so air reads -20 HU and bone +100 HU),
stores it as uint16 with RescaleSlope 1 and RescaleIntercept -1024, and *states* a
geometry: PixelSpacing 0.45 \\ 0.45 mm (a 230 mm field of view), SliceThickness
5 mm, ImagePositionPatient z stepping 5 mm from the skull base up (ct-ich's slice
order), ImageOrientationPatient axial. The pixels are left as ct-ich has them (the
face mostly points to the right edge); the brain preprocessing finds the midline.

For each patient it prints the true bleed volume under that stated spacing (mask
pixels x 0.45 x 0.45 x 5 / 1000 mL), to compare with the volume the portal shows, and
it reads every series back with ``ml.io.load_study`` to check units, spacing, slice
order and that the brain-window image comes back to within a grey level.

    .venv/bin/python bench/ct_ich_as_dicom.py [--patients 49 66 ...] \\
        [--data ../shared/data/ct-ich] [--out var/ct-ich-dicom]

Output: OUT/PPP/IM0001.dcm ... (PPP: the patient number, 3 digits), PatientID
CTICH-PPP, UIDs derived from the patient number (a rerun writes the same study).
Nothing under OUT may be committed: it is ct-ich's data (see its README).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CT_ICH = REPO.parent / "shared" / "data" / "ct-ich"

#: Bleeds of different sizes and kinds under the stated spacing, and one patient
#: without a bleed: 084 4 mL intraparenchymal + subarachnoid, 049 6 mL epidural +
#: intraparenchymal, 080 14 mL intraparenchymal + intraventricular, 094 62 mL
#: intraparenchymal + intraventricular, 054 none.
DEFAULT_PATIENTS = (84, 49, 80, 94, 54)
#: ct-ich's brain window, (level, width) in HU.
WINDOW = (40.0, 120.0)
PIXEL_MM = 0.45
SLICE_MM = 5.0
RESCALE_INTERCEPT = -1024
SUBTYPES = (
    "intraventricular", "intraparenchymal", "subarachnoid", "epidural", "subdural",
)  # fmt: skip


@dataclass
class Patient:
    """One ct-ich patient: slice images and masks in slice order, and their labels."""

    number: int
    images: list[Path]
    masks: list[Path]
    bleed_slices: list[int]  # ct-ich slice numbers (1-based)
    subtypes: set[str]

    @property
    def code(self) -> str:
        return f"{self.number:03d}"


def read_patients(data: Path, numbers: list[int]) -> list[Patient]:
    """The chosen patients from labels.csv, in the order asked; ValueError names any
    number that ct-ich does not have."""
    rows: dict[int, list[dict]] = {}
    with open(data / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(int(row["patient"]), []).append(row)
    unknown = [n for n in numbers if n not in rows]
    if unknown:
        raise ValueError(f"ct-ich has no patient {unknown}; it has {sorted(rows)}")
    patients = []
    for n in numbers:
        ordered = sorted(rows[n], key=lambda r: int(r["slice"]))
        bleeds = [r for r in ordered if r["any_hemorrhage"] == "1"]
        patients.append(
            Patient(
                number=n,
                images=[data / r["image"] for r in ordered],
                masks=[data / r["mask"] for r in ordered],
                bleed_slices=[int(r["slice"]) for r in bleeds],
                subtypes={s for r in bleeds for s in SUBTYPES if r[s] == "1"},
            )
        )
    return patients


def png_to_hu(grey: np.ndarray) -> np.ndarray:
    """(H, W) uint8 brain-window grey -> (H, W) int16 whole Hounsfield units."""
    level, width = WINDOW
    low = level - width / 2
    return np.rint(grey.astype(np.float64) / 255.0 * width + low).astype(np.int16)


def mask_volume_ml(masks: list[Path]) -> tuple[int, float]:
    """Bleed pixels over all masks and their volume in mL under the stated spacing."""
    from PIL import Image

    pixels = sum(int((np.asarray(Image.open(m)) > 0).sum()) for m in masks)
    return pixels, pixels * PIXEL_MM * PIXEL_MM * SLICE_MM / 1000.0


def _uid(patient: Patient, *parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(
        generate_uid(entropy_srcs=["ct-ich-dicom", patient.code, *map(str, parts)])
    )


def slice_dataset(patient: Patient, k: int, hu: np.ndarray, uids: dict) -> object:
    """The CT Image Storage dataset of slice ``k`` (0-based) of ``patient``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(patient, k)
    ds.PatientID, ds.PatientName = f"CTICH-{patient.code}", f"CTICH^{patient.code}"
    ds.PatientSex, ds.PatientBirthDate = "", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20200101", "120000", ""
    ds.StudyID, ds.SeriesNumber, ds.ReferringPhysicianName = "1", 2, ""
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "CT", "HEAD", "ct-ich"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.StudyDescription = "CT HEAD WITHOUT CONTRAST"
    ds.SeriesDescription = "CT-ICH brain window as HU"
    ds.ImageComments = (
        "ct-ich PNG (brain window 40/120) converted to HU; values outside "
        "-20..100 HU were clipped by the source; spacing stated, not measured"
    )
    rows, cols = hu.shape
    z = round(k * SLICE_MM, 3)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [
        round(-PIXEL_MM * (cols - 1) / 2, 3),
        round(-PIXEL_MM * (rows - 1) / 2, 3),
        z,
    ]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation, ds.SliceThickness = z, SLICE_MM
    ds.SpacingBetweenSlices = SLICE_MM
    ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = RESCALE_INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = WINDOW
    ds.PixelData = (hu.astype(np.int32) - RESCALE_INTERCEPT).astype(np.uint16).tobytes()
    return ds


def write_series(patient: Patient, out: Path) -> list[Path]:
    """Write one patient's slices as OUT/PPP/IM0001.dcm...; returns the paths."""
    from PIL import Image

    folder = out / patient.code
    folder.mkdir(parents=True, exist_ok=True)
    uids = {name: _uid(patient, name) for name in ("study", "series", "frame")}
    paths = []
    for k, image in enumerate(patient.images):
        grey = np.asarray(Image.open(image).convert("L"))
        ds = slice_dataset(patient, k, png_to_hu(grey), uids)
        paths.append(folder / f"IM{k + 1:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def check_series(patient: Patient, paths: list[Path]) -> str:
    """Read the series back with ml.io.load_study; ValueError unless it comes back
    as HU with the stated spacing, in ct-ich's slice order, within a grey level of
    the PNGs. Returns a one-line account."""
    from PIL import Image

    from ml.brain import brain_window
    from ml.io import load_study

    result = load_study(paths)
    meta = result.metadata
    problems = []
    if meta.units != "HU" or meta.modality != "CT":
        problems.append(f"units {meta.units!r}, modality {meta.modality!r}")
    if meta.pixel_spacing_mm is None or not np.allclose(
        meta.pixel_spacing_mm, (PIXEL_MM, PIXEL_MM)
    ):
        problems.append(f"pixel spacing {meta.pixel_spacing_mm}")
    if not np.isclose(meta.slice_spacing_mm or 0, SLICE_MM):
        problems.append(f"slice spacing {meta.slice_spacing_mm}")
    if len(result.volume) != len(patient.images) or result.rejected:
        problems.append(
            f"{len(result.volume)} slices, {len(result.rejected)} set aside"
        )
    else:
        back = brain_window(result.volume, units="HU")
        grey = np.stack(
            [np.asarray(Image.open(p).convert("L")) for p in patient.images]
        )
        worst = float(np.abs(back * 255.0 - grey).max())
        if worst > 1.1:  # whole HU are 2.1 grey levels apart: within one either way
            problems.append(f"brain window differs from the PNG by {worst:.1f} levels")
    if problems:
        raise ValueError(
            f"CTICH-{patient.code} does not read back: {'; '.join(problems)}"
        )
    return (
        f"load_study: {len(result.volume)} slices, units {meta.units}, pixel spacing "
        f"{meta.pixel_spacing_mm} mm, slice spacing {meta.slice_spacing_mm} mm"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--patients", type=int, nargs="+", default=list(DEFAULT_PATIENTS),
        help="ct-ich patient numbers (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=CT_ICH)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "ct-ich-dicom")
    args = parser.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"no ct-ich at {args.data} (labels.csv missing)", file=sys.stderr)
        return 2
    try:
        patients = read_patients(args.data, args.patients)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"pixel spacing {PIXEL_MM} x {PIXEL_MM} mm, slices {SLICE_MM} mm: one mask "
        f"pixel is {PIXEL_MM * PIXEL_MM * SLICE_MM:.4f} uL"
    )
    for patient in patients:
        paths = write_series(patient, args.out)
        pixels, volume = mask_volume_ml(patient.masks)
        bleed = (
            f"true bleed volume {volume:.2f} mL ({pixels} mask pixels on "
            f"{len(patient.bleed_slices)} slices: {patient.bleed_slices}; "
            f"{', '.join(sorted(patient.subtypes))})"
            if pixels
            else "no bleed (true volume 0 mL)"
        )
        print(
            f"CTICH-{patient.code}: {len(paths)} slices -> {paths[0].parent}; {bleed}"
        )
        print(f"    {check_series(patient, paths)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
