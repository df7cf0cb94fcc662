"""A real Celery worker for the fault tests, whose model call is a slow fake that
reports progress every half second, so that a test can kill the worker or the
database connection in the middle of a study. Not used outside tests.

    python -m tests.fault_worker   (settings and broker from the environment)
"""

import os
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


ml_adapter.analyse = slow_analyse

if __name__ == "__main__":
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
