"""The real Celery path for a received study: a worker (a thread, on the test
broker) runs beat's backup completion task and then the analysis the completion
enqueued, so that a series sent by storescu ends ready without the listener's own
timer."""

import pytest

from diagnosis.models import Arrival, Study, StudyStatus
from dicomnode.listener import Listener
from dicomnode.queue import incoming_complete_send

from .conftest import DCMTK, storescu, wait_for

pytestmark = [DCMTK, pytest.mark.slow]


def test_beat_task_completes_a_received_study_and_the_worker_analyses_it(
    scanner, synthetic_series, stub_analysis, active_model, worker
):
    listener = Listener(host="127.0.0.1", port=0, complete=False).start()
    try:
        assert storescu(listener.port, synthetic_series).returncode == 0
        # Nothing completes it but the beat task (the listener's timer is off).
        assert wait_for(lambda: Study.objects.exists(), timeout=2) is None

        def sent_and_ready():
            incoming_complete_send()
            return Study.objects.filter(
                arrival=Arrival.DICOM, status=StudyStatus.READY
            ).first()

        study = wait_for(sent_and_ready, timeout=60, step=1.0)
    finally:
        listener.stop()
    assert study is not None, list(Study.objects.values("status", "error_message"))
    assert study.slice_count == 8 and study.received_from == "SCANNER1"
    assert stub_analysis.calls == 1
