from django.apps import AppConfig


class DicomNodeConfig(AppConfig):
    name = "dicomnode"
    verbose_name = "DICOM node"

    def ready(self) -> None:
        from diagnosis import extensions

        # receivers: connects them to diagnosis' signals (results back, alerts).
        from . import panels, receivers  # noqa: F401

        extensions.add_study_page_part(panels.study_page_deliveries)
        extensions.add_study_page_part(panels.study_page_alerts)
