from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"

    def ready(self) -> None:
        from diagnosis import extensions

        # receivers: connects them to diagnosis' signals.
        from . import receivers, selectors  # noqa: F401

        # The model registry lives here, beside the jobs that make its versions;
        # diagnosis asks for a study's model through its hook.
        extensions.provide_model_chooser(selectors.model_version_for_study)
        extensions.add_study_page_part(selectors.study_page_cases)
