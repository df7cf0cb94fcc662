from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"

    def ready(self) -> None:
        from diagnosis import extensions

        from . import receivers  # noqa: F401  (connects them to diagnosis' signals)
        from . import selectors

        # The model registry lives here, beside the jobs that make its versions;
        # diagnosis asks for a study's model through its hook.
        extensions.provide_model_chooser(selectors.model_version_for_study)
        extensions.add_study_page_part(selectors.study_page_cases)
