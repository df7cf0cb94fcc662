import numpy as np
import pytest

from ml.io.geometry import edge_labels
from ml.viewer_data import default_window, encode_slices, slice_encoding


def decode(data: bytes, encoding, shape):
    stored = np.frombuffer(data, dtype="<i2").reshape(shape)
    return stored * encoding.scale + encoding.offset


def test_hounsfield_units_travel_exactly():
    volume = np.array([[[-1024, 0], [40, 3071]]], dtype=np.float32)
    encoding = slice_encoding(volume, units="HU")
    back = decode(encode_slices(volume, start=0, stop=1, encoding=encoding),
                  encoding, volume.shape)  # fmt: skip
    assert back.tolist() == volume.tolist()


def test_a_wide_range_is_spread_over_int16_and_comes_back_close():
    rng = np.random.default_rng(0)
    volume = rng.uniform(0, 250_000, size=(3, 8, 8)).astype(np.float32)
    encoding = slice_encoding(volume, units="raw16")
    back = decode(encode_slices(volume, start=1, stop=3, encoding=encoding),
                  encoding, (2, 8, 8))  # fmt: skip
    assert np.abs(back - volume[1:3]).max() <= encoding.scale


def test_nan_becomes_the_lowest_value_and_ranges_are_checked():
    volume = np.full((2, 2, 2), np.nan, dtype=np.float32)
    encoding = slice_encoding(volume, units="HU")
    data = encode_slices(volume, start=0, stop=2, encoding=encoding)
    assert set(np.frombuffer(data, "<i2")) == {-32768}
    with pytest.raises(ValueError, match="outside"):
        encode_slices(volume, start=1, stop=3, encoding=encoding)


def test_default_windows():
    volume = np.zeros((4, 8, 8), dtype=np.float32)
    assert default_window(volume, units="HU") == (40.0, 80.0)
    assert default_window(volume, units="windowed8") == (127.5, 255.0)


@pytest.mark.parametrize(
    "orientation, edges",
    [
        ([1, 0, 0, 0, 1, 0], {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
        # The same axial slice turned a quarter: rows run posterior-anterior.
        ([0, -1, 0, 1, 0, 0], {"left": "P", "right": "A", "top": "R", "bottom": "L"}),
        ([0, 1, 0, 0, 0, -1], {"left": "A", "right": "P", "top": "H", "bottom": "F"}),
        # Oblique by 45 degrees: two letters, the larger first.
        ([0.707, 0.707, 0, -0.707, 0.707, 0], {"right": "LP", "bottom": "RP"}),
    ],
)
def test_edge_labels_name_the_direction_each_edge_faces(orientation, edges):
    labels = edge_labels(orientation=np.array(orientation, dtype=float))
    assert {k: labels[k] for k in edges} == edges
