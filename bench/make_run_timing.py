"""`make run` on a fresh clone, as a newcomer meets it: how long each phase takes and
when the login page answers, on a first start and on a second one.

    .venv/bin/python bench/make_run_timing.py [--repo .] [--work $TMPDIR/make-run-bench]
        [--shipped-model DIR] [--keep]

Clones --repo (its committed files only, as `git clone` gives them) into --work,
runs `make run` there in an environment stripped of the portal's variables (a
free PORTAL_PORT only), timestamps every command make starts (venv, pip, .env,
migrate, static_ensure, demo_users, model_ensure, runportal) and polls
/accounts/login/ until it answers 200. Then it stops the portal with SIGINT, as
Ctrl-C does, and runs `make run` again in the same clone.

When the clone holds no shipped model (models/ich-seg-ctich/model.json) and no
--shipped-model is given, a stand-in is used: a lesion-feature model with zero
weights (a few kB of JSON) built with this checkout's ml/, so the timings cover
everything but the size of the real model's files. pip installs from whatever
index and wheel cache this machine's pip is configured with.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = Path("models") / "ich-seg-ctich"
# (phase, pattern of the command make echoes when the phase starts), in order.
PHASES = [
    ("venv", r" -m venv "),
    ("pip install", r"pip install"),
    (".env", r"scripts/ensure_env\.py"),
    ("migrate", r"manage\.py migrate"),
    ("static files", r"manage\.py (static_ensure|collectstatic)"),
    ("demo accounts", r"manage\.py demo_users"),
    ("model", r"manage\.py model_ensure"),
    ("web, worker, beat up", r"scripts/runportal\.py"),
]
# Set by a developer's shell or .venv activation; a newcomer has none of them.
UNSET_PREFIXES = ("DJANGO_", "CELERY_", "TEST_", "PORTAL_")
UNSET = {
    "DATA_DIR",
    "DATABASE_URL",
    "REDIS_URL",
    "STATIC_ROOT",
    "SHIPPED_MODEL_DIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newcomer_env(port: int, shipped_model: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(UNSET_PREFIXES) and k not in UNSET
    }
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if "/.venv/" not in f"{p}/")
    env["PORTAL_PORT"] = str(port)
    if shipped_model is not None:
        env["SHIPPED_MODEL_DIR"] = str(shipped_model)
    return env


def stand_in_model(folder: Path) -> Path:
    """A loadable lesion-feature model with zero weights (this checkout's ml/)."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from ml.brain import BrainConfig
    from ml.datasets import ManifestRow
    from ml.lesion.features import FEATURE_NAMES
    from ml.lesion.model import LesionModel
    from ml.lesion.train import FittedLesionModel, save_model_folder
    from ml.training.config import TrainConfig

    n = len(FEATURE_NAMES)
    model = LesionModel(
        list(FEATURE_NAMES), np.zeros(n), np.ones(n), np.zeros(n), 0.0, BrainConfig()
    )
    rows = [
        ManifestRow("a.png", "normal", "scan 1", "0" * 64, "0" * 16),
        ManifestRow("b.png", "stroke", "scan 2", "1" * 64, "0" * 16),
    ]
    return save_model_folder(
        FittedLesionModel(model, 1.0, 0.5, "topk", 3),
        rows=rows,
        config=TrainConfig(architecture="lesion_features", name="stand-in"),
        report={},
        folder=folder,
    )


def login_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def make_run(clone: Path, env: dict[str, str], log: Path, timeout: float) -> dict:
    """Run `make run` until the login page answers, then stop it as Ctrl-C does.
    Returns {"starts": {phase: seconds}, "login": seconds, "output": [lines]}."""
    url = f"http://127.0.0.1:{env['PORTAL_PORT']}/accounts/login/"
    t0 = time.monotonic()
    process = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        with open(log, "w", encoding="utf-8") as out:
            for line in process.stdout:
                lines.append((time.monotonic() - t0, line))
                out.write(f"{lines[-1][0]:8.1f} {line}")
                out.flush()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    login = None
    while time.monotonic() - t0 < timeout and process.poll() is None:
        if login_answers(url):
            login = time.monotonic() - t0
            break
        time.sleep(0.5)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(5)
    if login is None:
        tail = "".join(line for _, line in lines[-30:])
        raise RuntimeError(f"the login page never answered; see {log}:\n{tail}")
    starts = {}
    for phase, pattern in PHASES:
        hit = next((t for t, line in lines if re.search(pattern, line)), None)
        if hit is not None:
            starts[phase] = hit
    return {"starts": starts, "login": login}


def phase_times(run: dict) -> dict[str, float]:
    """Each phase's duration: from its command to the next one's (the last one to
    the login page answering)."""
    starts = sorted(run["starts"].items(), key=lambda item: item[1])
    ends = [t for _, t in starts[1:]] + [run["login"]]
    return {phase: end - t for (phase, t), end in zip(starts, ends, strict=True)}


def report(runs: list[dict]) -> str:
    times = [phase_times(run) for run in runs]
    header = f"{'phase':<24}" + "".join(f"{name:>14}" for name in ("first", "second"))
    rows = [header]
    for phase, _ in PHASES:
        cells = [f"{t[phase]:>12.1f} s" if phase in t else f"{'-':>14}" for t in times]
        rows.append(f"{phase:<24}" + "".join(cells))
    total = "".join(f"{run['login']:>12.1f} s" for run in runs)
    rows.append(f"{'login page answers':<24}{total}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "make-run-bench"
    )
    parser.add_argument("--shipped-model", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="Keep the clone.")
    args = parser.parse_args(argv)

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    clone = args.work / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(args.repo.resolve()), str(clone)], check=True
    )
    shipped = args.shipped_model
    if shipped is None and not (clone / SHIPPED / "model.json").is_file():
        shipped = stand_in_model(args.work / "stand-in" / "ich-seg-ctich")
        print(f"No {SHIPPED} in the clone: a stand-in model at {shipped}.")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"make run in {clone} (commit {commit}), logs in {args.work}")
    runs = []
    for n in (1, 2):
        env = newcomer_env(free_port(), shipped)
        log = args.work / f"make-run-{n}.log"
        runs.append(make_run(clone, env, log, args.timeout))
        print(f"start {n}: login page answered after {runs[-1]['login']:.1f} s")
    print(report(runs))
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
