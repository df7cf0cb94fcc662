"""Stroke detection library: read, preprocess, predict, explain, train, evaluate.

A pure library: it knows nothing of Django, Celery or the portal's apps. Paths, arrays
and dataclasses go in; dataclasses and arrays come out.
"""
