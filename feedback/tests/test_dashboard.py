"""The admin dashboard: users, feedback, jobs, models and the live figures."""

from django.urls import reverse


def test_dashboard_shows_live_figures(
    as_admin, make_ready_study, as_radiologist, admin
):
    agreed, corrected = make_ready_study(), make_ready_study()
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[agreed.pk]),
        {"final_label": "stroke", "stroke_type": "hemorrhagic"},
    )
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[corrected.pk]),
        {"final_label": "normal"},
    )
    page = as_admin.get(reverse("feedback:dashboard"))
    assert page.status_code == 200
    assert 'data-testid="agreement">50 %' in page.text
    assert 'data-testid="cases-pending">1<' in page.text
    assert "plotly/plotly.min.js" in page.text
    figures = as_admin.get(reverse("feedback:dashboard-figures")).json()["figures"]
    assert figures["studies"] == 2 and figures["reviewed_share"] == 1.0
    assert figures["median_seconds_to_result"] is not None
    # Every day of the window is a bar, 0 where nothing came, so one busy day is a
    # day-wide bar on an axis of days, not a full-width bar on one of milliseconds.
    days = figures["studies_per_day"]
    assert len(days) == figures["days"] + 1
    assert sum(d["n"] for d in days) == 2 and days[-1]["n"] == 2
    assert [d["n"] for d in days[:-1]] == [0] * figures["days"]
    chart = as_admin.get(reverse("feedback:dashboard-figures")).json()
    chart = chart["studies_chart"]
    assert chart["layout"]["xaxis"]["type"] == "date"
    assert chart["data"][0]["x"] == [d["day"] for d in days]


def test_plotly_is_served_locally(as_admin):
    from django.contrib.staticfiles import finders

    assert finders.find("plotly/plotly.min.js")


def test_dashboard_reads_a_fixed_number_of_queries_however_many_models_and_jobs(
    as_admin, admin, make_version, ready_dataset
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from feedback.models import RetrainingJob

    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert as_admin.get(reverse("feedback:dashboard")).status_code == 200
        return len(seen)

    make_version(dataset=ready_dataset, auc=0.81, sens=0.7, spec=0.75)
    RetrainingJob.objects.create(dataset=ready_dataset, started_by=admin)
    queries()  # the session's first page reads a few things once
    few = queries()
    for _ in range(6):
        make_version(dataset=ready_dataset, auc=0.8, sens=0.7, spec=0.8)
        RetrainingJob.objects.create(dataset=ready_dataset, started_by=admin)
    assert queries() == few
    page = as_admin.get(reverse("feedback:dashboard")).text
    assert "<td>0.810</td><td>0.700</td><td>0.750</td>" in page.replace("\n", "")
