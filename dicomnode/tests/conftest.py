"""Fixtures for dicomnode tests: reports' studies (the phantom series processed
through the real task with the model stubbed at the ml adapter), shared rather
than copied."""

from reports.tests import conftest as report_fixtures

files_root = report_fixtures.files_root
series_dir = report_fixtures.series_dir
active_model = report_fixtures.active_model
stub_analysis = report_fixtures.stub_analysis
phantom = report_fixtures.phantom
analysed_study = report_fixtures.analysed_study
ready_study = report_fixtures.ready_study
reviewed_study = report_fixtures.reviewed_study
lesion_analysis = report_fixtures.lesion_analysis
