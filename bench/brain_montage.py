"""Montages of the brain-aware preprocessing on every data source, to look at.

    .venv/bin/python bench/brain_montage.py --out var/montage

For each source (brain-stroke-ct, ct-ich, the DICOM phantoms) writes a PNG of
slices: left the slice with the head box and the midline mapped back onto it,
right the aligned brain image with the brain mask (green), the feature core
(yellow) and, for ct-ich, the radiologist's hemorrhage mask (red). A slice that is
not a brain slice has a red frame.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

from ml.brain import brain_study  # noqa: E402

TILE = 200


def _contours(canvas, mask, colour):
    found, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(canvas, found, -1, colour, 1)


def tile(slice_u8: np.ndarray, s, lesion: np.ndarray | None, label: str) -> np.ndarray:
    left = cv2.cvtColor(slice_u8, cv2.COLOR_GRAY2BGR)
    size = s.image.shape[0]
    line = np.zeros((size, size), np.float32)
    line[:, int(s.midline_x) - 1 : int(s.midline_x) + 1] = 1
    back = s.to_slice(line) > 0.3
    left[back] = (255, 0, 255)
    y0, y1, x0, x1 = s.head_box
    cv2.rectangle(left, (x0, y0), (x1 - 1, y1 - 1), (255, 128, 0), 2)
    left = cv2.resize(left, (TILE, TILE))
    right = cv2.cvtColor((s.image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    _contours(right, s.brain, (0, 255, 0))
    _contours(right, s.core, (0, 255, 255))
    if lesion is not None and lesion.any():
        _contours(right, s.from_slice(lesion.astype(np.float32)) > 0.5, (0, 0, 255))
    right = cv2.resize(right, (TILE, TILE))
    both = np.hstack([left, right])
    if not s.is_brain:
        cv2.rectangle(both, (0, 0), (2 * TILE - 1, TILE - 1), (0, 0, 255), 3)
    text = f"{label} f={s.brain_fraction:.2f} a={s.angle:.0f}{'' if s.ring else ' nr'}"
    cv2.putText(both, text, (4, 14), 0, 0.4, (0, 255, 0), 1)
    return both


def grid(tiles: list[np.ndarray], columns: int = 4) -> np.ndarray:
    blank = np.zeros_like(tiles[0])
    rows = [
        np.hstack((tiles[i : i + columns] + [blank] * columns)[:columns])
        for i in range(0, len(tiles), columns)
    ]
    return np.vstack(rows)


def ct_ich(out: Path, rng: random.Random) -> None:
    root = DATA / "ct-ich"
    rows = list(csv.DictReader((root / "labels.csv").open()))
    patients = sorted({r["patient"] for r in rows})
    for name in ("bleeds", "random"):
        tiles = []
        chosen = rng.sample(patients, 6)
        for patient in chosen:
            mine = [r for r in rows if r["patient"] == patient]
            volume = np.stack([cv2.imread(str(root / r["image"]), 0) for r in mine])
            study = brain_study(volume.astype(np.float32), units="windowed8")
            if name == "bleeds":
                picks = [i for i, r in enumerate(mine) if r["any_hemorrhage"] == "1"]
                picks = picks[:: max(1, len(picks) // 3)][:3] or [len(mine) // 2]
            else:
                picks = sorted(rng.sample(range(len(mine)), 3))
            for i in picks:
                lesion = cv2.imread(str(root / mine[i]["mask"]), 0) > 0
                tiles.append(
                    tile(volume[i], study.slices[i], lesion, f"{patient}/{i + 1}")
                )
        cv2.imwrite(str(out / f"ct-ich-{name}.png"), grid(tiles))


def brain_stroke_ct(out: Path, rng: random.Random) -> None:
    root = DATA / "brain-stroke-ct"
    files = sorted(root.glob("*/*.jpg"))
    scans: dict[str, list[Path]] = {}
    for f in files:
        scans.setdefault(f.stem.split(" ")[0], []).append(f)
    tiles = []
    for scan in rng.sample(sorted(scans), 6):
        paths = sorted(scans[scan], key=lambda p: int(p.stem.split("(")[1][:-1]))
        volume = np.stack([cv2.imread(str(p), 0) for p in paths]).astype(np.float32)
        study = brain_study(volume, units="windowed8")
        for i in sorted(rng.sample(range(len(paths)), 3)):
            label = f"{paths[i].parent.name[0]}{paths[i].stem}"
            tiles.append(tile(volume[i].astype(np.uint8), study.slices[i], None, label))
    cv2.imwrite(str(out / "brain-stroke-ct.png"), grid(tiles))


def phantoms(out: Path) -> None:
    from ml.io import load_study

    tiles = []
    for series in ("std-brain-5mm", "tilted-2.5mm"):
        folder = DATA / "dicom-head-phantom" / series
        result = load_study([str(p) for p in sorted(folder.iterdir())])
        study = brain_study(result.volume, units=result.metadata.units)
        picks = np.linspace(0, len(result.volume) - 1, 6).astype(int)
        for i in picks:
            hu = result.volume[i]
            u8 = (np.clip((hu + 20) / 120, 0, 1) * 255).astype(np.uint8)
            tiles.append(tile(u8, study.slices[i], None, f"{series[:6]}/{i}"))
    cv2.imwrite(str(out / "dicom-phantom.png"), grid(tiles))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "montage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no data folder at {DATA}; nothing to show")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    ct_ich(args.out, rng)
    brain_stroke_ct(args.out, rng)
    phantoms(args.out)
    print(f"montages in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
