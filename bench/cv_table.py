"""Markdown tables from bench/results/cv_*.json (written by bench/cv_real.py).

.venv/bin/python bench/cv_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _ci(section: dict, name: str) -> str:
    value, (lo, hi) = section[name], section["ci95"][name]
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> int:
    sys.path.insert(0, str(RESULTS.parents[1]))
    lines = [
        "| run | input | study AUC | study sens | study spec | slice AUC | "
        "s/epoch | epochs run | peak RSS |",
        "|---|---|---|---|---|---|---:|---|---:|",
    ]
    for path in sorted(RESULTS.glob("cv_*.json")):
        data = json.loads(path.read_text())
        study, slices = data["pooled"]["study"], data["pooled"]["slice"]
        size = data["input_size"]
        lines.append(
            f"| {data['name']} | {size} px | {_ci(study, 'auc')} | "
            f"{_ci(study, 'sensitivity')} | {_ci(study, 'specificity')} | "
            f"{_ci(slices, 'auc')} | {data['seconds_per_epoch']:.0f} | "
            f"{','.join(map(str, data['epochs_run']))} | "
            f"{data['peak_rss_mb'] / 1024:.1f} GiB |"
        )
    print("\n".join(lines))
    grouped, leaky = (
        RESULTS / "cv_custom_cnn.json",
        RESULTS / "cv_custom_cnn_random_slice.json",
    )
    if grouped.is_file() and leaky.is_file():
        from ml.evaluation import leakage_markdown, leakage_report

        table = leakage_report(
            grouped=json.loads(grouped.read_text())["pooled"],
            random_split=json.loads(leaky.read_text())["pooled"],
        )
        print("\n" + leakage_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
