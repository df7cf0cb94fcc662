"""Lay ct-ich out as class folders, so `python -m ml evaluate --data` reads it as a
hospital's export would arrive: OUT/Stroke/PPP_SS.png for every slice of a patient
with a hemorrhage, OUT/Normal/PPP_SS.png for the others (symbolic links, nothing
copied; patient-level labels, as a study's finding is).

    .venv/bin/python bench/ct_ich_as_folders.py --out var/ct-ich-folders
    .venv/bin/python -m ml evaluate --model MODEL --data var/ct-ich-folders \\
        --group-regex '(?P<group>\\d+)_\\d+' --out var/eval-ct-ich
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT_ICH = REPO.parent / "shared" / "data" / "ct-ich"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "ct-ich-folders")
    args = parser.parse_args()
    rows = list(csv.DictReader((CT_ICH / "labels.csv").open()))
    bleeding = {r["patient"] for r in rows if r["any_hemorrhage"] == "1"}
    for row in rows:
        label = "Stroke" if row["patient"] in bleeding else "Normal"
        target = (
            args.out / label / f"{int(row['patient']):03d}_{int(row['slice']):02d}.png"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(CT_ICH / row["image"])
    print(
        f"{len(rows)} slices of {len({r['patient'] for r in rows})} patients "
        f"({len(bleeding)} with a hemorrhage) in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
