"""Collect the static files only when they changed; `make run` calls this on every
start, beside model_ensure.

collectstatic hashes and compresses every file each time it runs, even when nothing
changed (about 20 s here, most of it brotli on plotly.min.js). This command
fingerprints what the finders would collect (each file's path, size and modification
time, and the storage settings) and runs collectstatic only when that fingerprint, or
the manifest it left in STATIC_ROOT, differs from the last run's. A storage without a
manifest is collected every time.
"""

import hashlib
import json
import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run collectstatic unless the collected static files are up to date."

    def handle(self, *args, verbosity=1, **options):
        stamp = stamp_path()
        sources = sources_fingerprint()
        last = stamp.read_text().split() if stamp.is_file() else []
        collected = collected_fingerprint()
        if collected is not None and last == [sources, collected]:
            self.stdout.write(f"Static files in {settings.STATIC_ROOT} are up to date.")
            return
        self.stdout.write(
            f"Collecting static files into {settings.STATIC_ROOT} (hashed and "
            "compressed once; later starts skip this)..."
        )
        call_command(
            "collectstatic", interactive=False, verbosity=verbosity, stdout=self.stdout
        )
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{sources} {collected_fingerprint() or '-'}\n")


def stamp_path() -> Path:
    """Beside STATIC_ROOT, not in it: everything in STATIC_ROOT is served."""
    root = Path(settings.STATIC_ROOT)
    return root.with_name(f"{root.name}.collected")


def sources_fingerprint() -> str:
    """sha256 of the storage settings and of every file collectstatic would copy."""
    ignore = apps.get_app_config("staticfiles").ignore_patterns
    entries: list[object] = [
        str(settings.STATIC_ROOT),
        settings.STATIC_URL,
        settings.STORAGES["staticfiles"],
        getattr(settings, "WHITENOISE_KEEP_ONLY_HASHED_FILES", False),
        list(getattr(settings, "WHITENOISE_SKIP_COMPRESS_EXTENSIONS", None) or []),
    ]
    for finder in finders.get_finders():
        for path, storage in finder.list(ignore):
            source = storage.path(path)
            stat = os.stat(source)
            prefixed = os.path.join(getattr(storage, "prefix", None) or "", path)
            entries.append([prefixed, source, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries, default=str).encode()).hexdigest()


def collected_fingerprint() -> str | None:
    """sha256 of the manifest collectstatic wrote; None when there is none (STATIC_ROOT
    emptied or deleted, or a storage without a manifest, which is collected every
    time)."""
    manifest = getattr(staticfiles_storage, "manifest_name", None)
    if manifest is None or not staticfiles_storage.exists(manifest):
        return None
    return hashlib.sha256(
        Path(staticfiles_storage.path(manifest)).read_bytes()
    ).hexdigest()
