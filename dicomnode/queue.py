"""The one module that sends dicomnode work to Celery (the only importer of
dicomnode/tasks.py). Beat sends incoming_complete_task by name from
CELERY_BEAT_SCHEDULE; nothing here enqueues it."""
