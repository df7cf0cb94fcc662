"""Static files taken one at a time from installed packages."""

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.contrib.staticfiles.utils import matches_patterns
from django.core import checks
from django.core.files.storage import FileSystemStorage


class PackageFileFinder(BaseFinder):
    """The files of ``STATICFILES_PACKAGE_FILES``, a list of ``(prefix, file)``
    served as ``<prefix>/<file name>``, and nothing else of their packages.

    Pointing STATICFILES_DIRS at plotly's package data would also collect a 5 MB
    widget bundle and sample data sets that no page uses, which collectstatic hashes
    and compresses on every first start.
    """

    def __init__(self, *args, **kwargs):
        self.files = {
            f"{prefix}/{Path(path).name}": Path(path)
            for prefix, path in getattr(settings, "STATICFILES_PACKAGE_FILES", [])
        }
        super().__init__(*args, **kwargs)

    def check(self, **kwargs):
        return [
            checks.Warning(
                f"{path} does not exist: static/{name} cannot be served.",
                hint="Install the requirements (make install).",
                id="stroke_portal.W001",
            )
            for name, path in self.files.items()
            if not path.is_file()
        ]

    def find(self, path, find_all=False, **kwargs):
        if kwargs:
            find_all = self._check_deprecated_find_param(find_all=find_all, **kwargs)
        file = self.files.get(path)
        found = [str(file)] if file is not None and file.is_file() else []
        # Nothing found is [] either way: staticfiles.finders.find() would take a
        # None for a match.
        return found[0] if found and not find_all else found

    def list(self, ignore_patterns):
        for name, path in self.files.items():
            if not path.is_file() or matches_patterns(path.name, ignore_patterns or []):
                continue
            storage = FileSystemStorage(location=path.parent)
            storage.prefix = name.rsplit("/", 1)[0]
            yield path.name, storage
