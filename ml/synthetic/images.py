"""Writing a phantom as 8-bit PNG slices and masks, and a montage to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ml.synthetic.phantom import Phantom


def window_to_uint8(hu: np.ndarray, *, window: str = "brain") -> np.ndarray:
    """Brain-window (or another preset) HU to uint8 0..255, as a PNG stores it."""
    from ml.preprocess import to_uint8, window_by_name

    return to_uint8(window_by_name(hu, name=window))


def write_png_slices(
    phantom: Phantom, out_dir: str | Path, *, scan_number: int, window: str = "brain"
) -> list[Path]:
    """Write 8-bit windowed slices named ``N (k).png`` (k from 1), like brain-stroke-ct.

    Returns the paths in slice order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, hu in enumerate(phantom.volume_hu, start=1):
        paths.append(out / f"{scan_number} ({k}).png")
        _imwrite(paths[-1], window_to_uint8(hu, window=window))
    return paths


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write image {path}")


def write_mask(
    phantom: Phantom, out_dir: str | Path, *, fmt: str = "npy", scan_number: int = 1
) -> list[Path]:
    """Write the lesion mask: ``mask.npy`` ((D, H, W) bool) or ``masks/N (k).png``.

    PNG masks are 0/255 uint8, one per slice, in a ``masks`` folder (which
    ``ml.datasets`` skips when indexing images).
    """
    out = Path(out_dir)
    if fmt == "npy":
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "mask.npy", phantom.mask)
        return [out / "mask.npy"]
    if fmt != "png":
        raise ValueError(f"mask format must be 'npy' or 'png', got {fmt!r}")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    paths = [
        out / "masks" / f"{scan_number} ({k}).png"
        for k in range(1, len(phantom.mask) + 1)
    ]
    for path, plane in zip(paths, phantom.mask, strict=True):
        _imwrite(path, plane.astype(np.uint8) * 255)
    return paths


def phantom_montage(
    phantoms: list[Phantom], *, columns: int = 6, outline: bool = False
) -> np.ndarray:
    """A grid of brain-windowed slices: one row per phantom, ``columns`` slices each.

    Slices are spread evenly over each stack and, when the phantom has a lesion,
    include its central slice. ``outline`` draws lesion contours in red. Returns
    (rows * H, columns * W, 3) uint8 RGB.
    """
    if not phantoms or columns < 1:
        raise ValueError("need at least one phantom and one column")
    return np.concatenate([_montage_row(p, columns, outline) for p in phantoms])


def _montage_row(phantom: Phantom, columns: int, outline: bool) -> np.ndarray:
    depth = len(phantom.volume_hu)
    picks = set(np.linspace(0, depth - 1, columns).round().astype(int).tolist())
    if "slice" in phantom.details:
        picks.add(int(phantom.details["slice"]))
    tiles = [_montage_tile(phantom, k, outline) for k in sorted(picks)[-columns:]]
    row = np.concatenate(tiles, axis=1)
    caption = f"{phantom.label} ({phantom.lesion})"
    cv2.putText(row, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0))
    return row


def _montage_tile(phantom: Phantom, k: int, outline: bool) -> np.ndarray:
    tile = np.repeat(window_to_uint8(phantom.volume_hu[k])[..., None], 3, axis=-1)
    if outline and phantom.mask[k].any():
        contours, _ = cv2.findContours(
            phantom.mask[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(tile, contours, -1, (255, 0, 0), 1)
    return tile
