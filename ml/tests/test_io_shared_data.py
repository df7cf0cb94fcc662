"""ml.io on the real data beside the project (../shared/data), when it is there.

A Philips head phantom (real CT headers: intercept -1024, a localizer, a
gantry-tilted series) and a few slices of the brain-stroke JPEG set.
"""

from pathlib import Path

import numpy as np
import pytest

from ml.io import load_study

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PHANTOM = DATA / "dicom-head-phantom"
STROKE_CT = DATA / "brain-stroke-ct"

pytestmark = pytest.mark.skipif(
    not PHANTOM.is_dir() or not STROKE_CT.is_dir(),
    reason=f"shared data not found at {DATA.resolve()} (optional, never committed)",
)


def test_std_brain_series_loads_in_position_order_with_localizer_set_aside():
    result = load_study([PHANTOM / "std-brain-5mm", PHANTOM / "localizer"])

    assert result.volume.shape == (28, 512, 512)
    positions = [s.position_mm for s in result.slices]
    assert positions == sorted(positions)
    assert result.metadata.slice_spacing_mm == pytest.approx(5.0)
    reasons = {r.name: r.reason for r in result.rejected}
    assert reasons["localizer/I10"] == "localizer (scout) image, not an axial slice"
    assert reasons["localizer/DIRFILE"].startswith("DICOMDIR")


def test_std_brain_series_reads_hounsfield_units():
    # The phantom is a hollow plastic skull: air inside and out, bone-like shell.
    volume = load_study(PHANTOM / "std-brain-5mm").volume

    assert volume.min() == -1024  # stored 0 with RescaleIntercept -1024
    assert np.median(volume[14, :40, :40]) == pytest.approx(-1000, abs=50)
    assert 300 <= np.percentile(volume, 99.5) <= 1500  # bone, not raw stored values


def test_tilted_series_records_its_gantry_tilt():
    result = load_study(PHANTOM / "tilted-2.5mm")

    assert result.volume.shape[0] == 54
    assert result.metadata.gantry_tilt_deg == pytest.approx(-18.5)
    positions = [s.position_mm for s in result.slices]
    assert positions == sorted(positions)


def test_stroke_ct_jpegs_load_in_slice_order_as_windowed8():
    names = [f"100 ({k}).jpg" for k in (12, 3, 7, 1)]
    paths = [STROKE_CT / "Normal" / name for name in names]
    if not all(p.exists() for p in paths):
        pytest.skip("scan 100 is not in brain-stroke-ct/Normal")

    result = load_study(paths)

    assert [s.source for s in result.slices] == [
        "100 (1).jpg",
        "100 (3).jpg",
        "100 (7).jpg",
        "100 (12).jpg",
    ]
    assert result.metadata.units == "windowed8"
    assert result.volume.shape == (4, 650, 650)
