"""A map with nothing visible on it is not a map: the slice is shown and reported as
having none, instead of a "heatmap" marker over a plain slice."""

import dataclasses

import numpy as np
import pytest
from django.urls import reverse

from diagnosis.models import Study
from diagnosis.tasks import study_process_task

from .conftest import fake_analysis, uploads_of

BLANK, MAPPED = 5, 4


@pytest.fixture
def processed(as_clinician, series_dir, monkeypatch, active_model, stub_analysis):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    study = Study.objects.get()
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    stub_analysis.next = dataclasses.replace(
        fake_analysis(),
        heatmaps={BLANK: np.zeros((64, 64), np.float32), MAPPED: ramp},
    )
    assert study_process_task.apply(args=[study.pk]).result == "done"
    return study


def test_a_blank_map_is_not_stored(processed):
    names = dict(processed.slices.values_list("index", "heatmap_name"))
    assert names[BLANK] == ""
    assert names[MAPPED]


def test_the_viewer_marks_only_the_slice_with_a_visible_map(processed, as_radiologist):
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[processed.pk]))
    html = page.content.decode()
    # The viewer's data (json_script) lists the slices it lays a map over.
    assert page.context["viewer"]["overlays"] == [MAPPED]
    bars = {
        index: html.split(f'data-index="{index}"')[0].rsplit("<button", 1)[1]
        for index in (BLANK, MAPPED)
    }
    assert "has-heat" in bars[MAPPED]
    assert "has-heat" not in bars[BLANK]
