"""The Celery app. Workers import Django settings through it; tasks live in the apps."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stroke_portal.settings")

app = Celery("stroke_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
