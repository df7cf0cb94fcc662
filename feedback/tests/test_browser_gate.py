"""The promotion gate as an admin meets it in Debian's Chromium (issue 14): a
candidate with a better AUC and sensitivity but a specificity of 0.10 (it calls 90%
of the normal studies strokes) is refused, says why, and "Promote anyway" without a
written reason changes nothing.

Screenshot for a person to look at: test-artifacts/gate-refuses-low-specificity.png.
"""

import pytest

from feedback.models import ModelStatus
from tests.browser import ARTIFACTS, needs_chromium, sign_in

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


def test_the_gate_refuses_a_candidate_that_calls_most_normal_studies_strokes(
    browser, live_server, demo_passwords, make_version, ready_dataset
):
    active = make_version(
        status=ModelStatus.ACTIVE, dataset=ready_dataset, auc=0.80, sens=0.90
    )
    eager = make_version(dataset=ready_dataset, auc=0.85, sens=0.97, spec=0.10)
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, live_server.url, "demo-admin", demo_passwords["demo-admin"])
    page.goto(f"{live_server.url}/feedback/models/{eager.pk}/")
    gate = page.get_by_test_id("gate")
    words = gate.inner_text()
    assert words.startswith("Promotion gate: refuses")
    assert "Specificity 0.100 is below the floor of 0.5" in words
    gate.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "gate-refuses-low-specificity.png", full_page=True)

    # "Promote anyway" with no reason written is refused, and nothing changes.
    page.get_by_role("button", name="Promote anyway").click()
    page.get_by_text("The promotion gate refuses this candidate").wait_for()
    eager.refresh_from_db()
    active.refresh_from_db()
    assert (eager.status, active.status) == (ModelStatus.CANDIDATE, ModelStatus.ACTIVE)
    assert page.js_errors == []
