"""reports.downloads is the one door every report file goes out through: a file
that cannot be made yet leaves no audit row that says it was handed out, and no
view builds or audits a download on its own."""

import ast
import inspect

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from diagnosis.models import Study, StudyStatus
from reports import apis, downloads, views

KINDS = [("reports:study-fhir", 302), ("api:study-report-fhir", 409)]


@pytest.mark.parametrize("url_name, status", KINDS)
def test_a_report_not_ready_is_not_audited_as_handed_out(
    url_name, status, ready_study, as_clinician
):
    Study.objects.filter(pk=ready_study.pk).update(status=StudyStatus.PROCESSING)
    response = as_clinician.get(reverse(url_name, args=[ready_study.pk]))
    assert response.status_code == status
    assert not AuditEntry.objects.filter(action=downloads.DOWNLOAD).exists()


@pytest.mark.parametrize("module", [views, apis])
def test_report_views_leave_building_and_auditing_to_the_download_helper(module):
    tree = ast.parse(inspect.getsource(module))
    called = {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
    }
    assert "study_download" in called
    assert not called & {"audit_record", "FileResponse", "report_get_or_render"}


def test_an_unknown_format_is_refused_before_anything_is_read(rf, clinician):
    request = rf.get("/")
    request.user = clinician
    with pytest.raises(ValueError, match="Unknown report format 'xml'"):
        downloads.study_download(request, pk=1, kind="xml", unavailable=None)
