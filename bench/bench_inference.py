"""Inference benchmark: per-slice time batched (Keras tf.function vs onnxruntime), a
30-slice study with Grad-CAM of its 3 most suspicious slices, and the peak resident
memory of a worker process holding the fusion model.

Untrained weights (timing does not depend on them). Run from the repository root:

    .venv/bin/python bench/bench_inference.py --out bench/results/inference.json

Targets (issue 4): MobileNetV2 <= 5 ms/slice, fusion <= 50 ms/slice, a 30-slice
fusion study with 3 heatmaps <= 2 s, a worker holding the fusion model <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

ARCHITECTURES = ("mobilenet_v2", "resnet_mobilenet_fusion")
BATCH = 16
SLICES = 64  # slices timed per repeat (4 batches of 16)


def build_folder(architecture: str, size: int, root: Path, *, onnx: bool) -> Path:
    """Save an untrained 3-channel model folder (and its ONNX export)."""
    from ml.modelfile import ModelCard, model_card_save
    from ml.models import build_model
    from ml.onnx_export import KERAS_FILE, onnx_export
    from ml.preprocess import PreprocessConfig

    folder = root / f"{architecture}-{size}"
    folder.mkdir(parents=True)
    model = build_model(architecture, input_shape=(size, size, 3))
    model.save(folder / KERAS_FILE)
    card = ModelCard(
        name=f"bench-{architecture}",
        version="0",
        architecture=architecture,
        task="binary",
        classes=["normal", "stroke"],
        modality="CT",
        input_shape=[size, size, 3],
        preprocessing=PreprocessConfig(window="multi", size=size, channels=3).to_dict(),
    )
    model_card_save(card, folder)
    if onnx:
        result = onnx_export(model_dir=folder, model=model)
        print(
            f"  {architecture} {size}px: ONNX {'kept' if result.kept else 'NOT kept'} "
            f"in {result.seconds:.0f} s, max |diff| {result.max_abs_diff}",
            flush=True,
        )
    return folder


def time_per_slice(runner, *, size: int, repeats: int) -> float:
    """Median ms per slice over ``repeats`` runs of SLICES slices in batches."""
    x = np.random.default_rng(0).random((SLICES, size, size, 3), dtype=np.float32)
    runner(x[:BATCH])  # warm-up: trace / first run
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for begin in range(0, SLICES, BATCH):
            runner(x[begin : begin + BATCH])
        times.append((time.perf_counter() - start) / SLICES * 1000.0)
    return statistics.median(times)


def bench_slices(folder: Path, size: int, repeats: int) -> dict:
    from ml.inference import Predictor

    out = {}
    for backend in ("tensorflow", "onnxruntime"):
        try:
            predictor = Predictor.load(folder, backend=backend, batch_size=BATCH)
        except ValueError as exc:
            out[backend] = {"error": str(exc)}
            continue
        ms = time_per_slice(predictor._runner, size=size, repeats=repeats)
        out[backend] = {"ms_per_slice": round(ms, 2)}
        if backend == "onnxruntime":
            out[backend]["max_abs_diff"] = predictor.onnx.max_abs_diff
    return out


def phantom_study(slices: int = 30):
    from ml import synthetic
    from ml.io import LoadResult, SliceInfo, StudyMetadata

    phantom = synthetic.make_phantom(label="hemorrhagic", size=256, slices=slices)
    return LoadResult(
        volume=phantom.volume_hu,
        slices=[SliceInfo(source=str(k)) for k in range(slices)],
        metadata=StudyMetadata(source_kind="bench", units="HU", modality="CT"),
    )


def bench_study(folder: Path, backend: str, repeats: int) -> dict:
    """A 30-slice study: preprocess + predict + Grad-CAM of the top 3 slices."""
    from ml.inference import Predictor

    predictor = Predictor.load(folder, backend=backend, batch_size=BATCH)
    runs = []
    for _ in range(repeats + 1):  # the first run traces Grad-CAM's graph
        study = phantom_study()  # a new volume: no cached preprocessing
        start = time.perf_counter()
        result = predictor.predict(study)
        predicted = time.perf_counter()
        predictor.explain(study, slices=result.top_slices[:3])
        done = time.perf_counter()
        runs.append(
            {
                "preprocess_s": result.timings["preprocess_s"],
                "predict_s": result.timings["predict_s"],
                "gradcam_3_s": done - predicted,
                "total_s": done - start,
            }
        )
    warm = runs[1:]
    return {
        "backend": predictor.backend,
        "first_total_s": round(runs[0]["total_s"], 3),
        **{k: round(statistics.median(r[k] for r in warm), 3) for k in warm[0]},
    }


def child_rss(folder: Path, backend: str) -> dict:
    """Peak RSS of a fresh process that loads the model, predicts and explains.

    VmHWM, not getrusage: Linux carries ru_maxrss over from the forking parent
    (this benchmark, which holds several models) into the exec'd child.
    """
    code = (
        "import os, sys, json\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        f"sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'bench')!r}]\n"
        "from bench_inference import phantom_study\n"
        "from ml.inference import Predictor\n"
        f"p = Predictor.load({str(folder)!r}, backend={backend!r})\n"
        "s = phantom_study()\n"
        "r = p.predict(s)\n"
        "p.explain(s, slices=r.top_slices[:3])\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "mb = int(status.split()[0]) / 1024\n"
        "print(json.dumps({'backend': p.backend, 'peak_rss_mb': round(mb)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("slices", "study", "rss"),
        default=["slices", "study", "rss"],
    )
    args = parser.parse_args()
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "batch_size": BATCH,
        "slices": {},
        "study_30": {},
        "rss": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as work:
        root = Path(work)
        for size in args.sizes:
            for arch in ARCHITECTURES:
                key = f"{arch}@{size}"
                fusion = arch == "resnet_mobilenet_fusion"
                if "slices" not in args.parts and not fusion:
                    continue
                folder = build_folder(arch, size, root, onnx=True)
                if "slices" in args.parts:
                    results["slices"][key] = bench_slices(folder, size, args.repeats)
                    print(f"{key}: {results['slices'][key]}", flush=True)
                if not fusion:
                    continue
                for backend in ("onnxruntime", "tensorflow"):
                    if "study" in args.parts:
                        study = bench_study(folder, backend, args.repeats)
                        results["study_30"][f"{key}/{backend}"] = study
                        print(f"  30-slice study ({backend}): {study}", flush=True)
                    if "rss" in args.parts:
                        rss = child_rss(folder, backend)
                        results["rss"][f"{key}/{backend}"] = rss
                        print(f"  worker peak RSS ({backend}): {rss}", flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["bench_process_peak_rss_mb"] = round(own)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
