"""A real Celery worker for the fault tests, whose model call is a slow fake that
reports progress every half second, so that a test can kill the worker or the
database connection in the middle of a study. Not used outside tests.

    python -m tests.fault_worker          a worker (inference and default queues)
    python -m tests.fault_worker beat     beat, with the study sweeper only

Settings and broker come from the environment, and:

    FAKE_ANALYSIS_SECONDS    how long the fake model takes per study (6)
    FAKE_MODEL_LOAD_SECONDS  how long loading the model at pool process start takes
                             (as TensorFlow does in worker_process_init; 0)
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stroke_portal.settings")
django.setup()

from diagnosis import ml_adapter  # noqa: E402
from stroke_portal.celery import app  # noqa: E402


def slow_analyse(*, load_result, progress=None, **kwargs):
    total = len(load_result.slices)
    steps = int(float(os.environ.get("FAKE_ANALYSIS_SECONDS", "6")) / 0.5)
    for step in range(1, steps + 1):
        time.sleep(0.5)
        if progress:
            progress(total * step // steps, total)
    return ml_adapter.Analysis(
        label="stroke",
        probability=0.9,
        confidence=0.9,
        threshold=0.5,
        slice_probabilities=[0.5] * total,
        suspicious_slices=[0],
    )


def slow_warm_up(**kwargs):
    time.sleep(float(os.environ["FAKE_MODEL_LOAD_SECONDS"]))


ml_adapter.analyse = slow_analyse
if os.environ.get("FAKE_MODEL_LOAD_SECONDS"):
    ml_adapter.warm_up = slow_warm_up


def beat_main() -> None:
    app.conf.beat_schedule = {
        "requeue-stalled-studies": app.conf.beat_schedule["requeue-stalled-studies"]
    }
    app.start(["beat", "--loglevel", "INFO"])


if __name__ == "__main__" and sys.argv[1:] == ["beat"]:
    beat_main()
elif __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "--queues",
            "inference,default",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"fault-{os.getpid()}@%h",
        ]
    )
