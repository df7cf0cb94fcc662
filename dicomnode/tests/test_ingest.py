"""Completion is safe twice and at once; compressed series arrive as sent."""

import threading

import pytest
from django.db import connections
from django.utils import timezone

from diagnosis.models import Study
from dicomnode import ingest
from dicomnode.models import CollectionState, IncomingStudy
from ml.synthetic import make_phantom, write_dicom_series

from .conftest import DCMTK, queued, series, storescu


def test_two_completions_at_once_make_one_study(transactional_db, scanner, tmp_path):
    for path in series(tmp_path / "s", uid_seed="race"):
        outcome = ingest.instance_receive(node=scanner, data=path.read_bytes())
        assert outcome.status == ingest.SUCCESS
    later = timezone.now() + timezone.timedelta(seconds=5)
    done: list[list[int]] = []

    def complete():
        try:
            done.append(ingest.incoming_complete_quiet(now=later))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(len(d) for d in done) == [0, 1]  # one claimed it, one found none
    assert Study.objects.get().slice_count == 8
    assert IncomingStudy.objects.get().state == CollectionState.QUEUED
    assert ingest.incoming_complete_quiet(now=later) == []  # and again: nothing


def test_a_collection_is_not_complete_before_its_quiet_time(scanner, tmp_path):
    path = series(tmp_path / "s", slices=1, uid_seed="early")[0]
    ingest.instance_receive(node=scanner, data=path.read_bytes())
    assert ingest.incoming_complete_quiet() == []
    assert IncomingStudy.objects.get().state == CollectionState.COLLECTING


@DCMTK
@pytest.mark.parametrize(
    ("syntax", "propose"), [("jpeg-ls", "-xt"), ("jpeg2000", "-xv"), ("rle", "-xr")]
)
def test_compressed_series_is_received_as_sent(listener, tmp_path, syntax, propose):
    files = write_dicom_series(
        make_phantom(size=64, slices=6, seed=2),
        tmp_path / syntax,
        transfer_syntax=syntax,
        uid_seed=f"compressed-{syntax}",
    )
    # As a scanner configured to send compressed: it proposes that syntax.
    result = storescu(listener.port, files, extra=[propose])
    assert result.returncode == 0, result.stderr
    study = queued()
    assert study is not None and study.slice_count == 6
