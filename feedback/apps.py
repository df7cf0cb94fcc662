from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects them to diagnosis' signals)
