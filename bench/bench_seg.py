"""Speed of the hemorrhage segmentation model, stage by stage, on a 30-slice 512²
synthetic head CT (HU), as a worker runs it.

    .venv/bin/python bench/bench_seg.py --model models/ich-seg-ctich [--repeats 5]

Reports the median over repeats of: preprocessing (``brain_study``), the network on
the brain slices (onnxruntime, all cores), per slice, the full ``predict`` and the
outline maps of every read slice (``explain``), and the process's peak resident
memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=30)
    args = parser.parse_args()

    from ml import synthetic
    from ml.brain import brain_study
    from ml.inference import Predictor
    from ml.io import LoadResult, SliceInfo, StudyMetadata
    from ml.segment.data import model_input

    predictor = Predictor.load(args.model)
    phantom = synthetic.make_phantom(
        label="hemorrhagic", size=512, slices=args.slices, seed=1
    )
    slice_mm, row_mm, col_mm = phantom.spacing

    def study() -> LoadResult:  # a new volume object: nothing cached between runs
        return LoadResult(
            volume=phantom.volume_hu.copy(),
            slices=[SliceInfo(source=f"{k}.dcm") for k in range(args.slices)],
            metadata=StudyMetadata(
                source_kind="dicom",
                units="HU",
                modality="CT",
                pixel_spacing_mm=(row_mm, col_mm),
                slice_spacing_mm=slice_mm,
            ),
        )

    times: dict[str, list[float]] = {
        k: [] for k in ("brain", "net", "predict", "explain")
    }
    predictor.predict(study())  # warm-up
    for _ in range(args.repeats):
        load = study()
        start = time.perf_counter()
        aligned = brain_study(load.volume, units="HU", config=predictor.brain)
        times["brain"].append(time.perf_counter() - start)
        read = np.flatnonzero(aligned.is_brain)
        batch = np.stack([model_input(aligned.slices[i]) for i in read])
        start = time.perf_counter()
        predictor._run(batch)
        times["net"].append((time.perf_counter() - start) / len(read))
        load = study()
        start = time.perf_counter()
        prediction = predictor.predict(load)
        times["predict"].append(time.perf_counter() - start)
        start = time.perf_counter()
        read_slices = [i for i, r in enumerate(prediction.read_slices) if r]
        predictor.explain(load, slices=read_slices)
        times["explain"].append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"model {args.model}, {args.slices} x 512 x 512 HU, median of {args.repeats}")
    print("| stage | time |")
    print("|---|---:|")
    print(f"| brain_study (align, masks), whole study | {med['brain'] * 1000:.0f} ms |")
    print(
        f"| network, per brain slice ({len(read)} read) | {med['net'] * 1000:.1f} ms |"
    )
    print(f"| predict (all of it, volume included) | {med['predict'] * 1000:.0f} ms |")
    explain_ms = med["explain"] * 1000
    print(f"| explain: outline maps of every read slice | {explain_ms:.0f} ms |")
    print(f"| peak resident memory of this process | {peak_mb:.0f} MB |")
    print(f"volume {prediction.volume_ml} mL, label {prediction.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
