"""Make sure an AI model is active for CT. `make run` calls this on every start.

By default it activates the hemorrhage model shipped with the project
(SHIPPED_MODEL_DIR, models/ich-seg-ctich) when no CT model is active: the first
start copies it under MODELS_DIR and registers it in seconds, and every later start
only says which model is active. An active model, whether an admin promoted it or
an earlier start activated it, is never replaced unless --replace says so.

--demo trains the phantom demo model instead (once, a few minutes; `make demo-model`
and the tests use it), --path activates any model folder.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from feedback import selectors, services
from feedback.models import ModelStatus, ModelVersion
from ml.modelfile import (
    MODEL_JSON,
    ModelFileError,
    file_sha256,
    model_card_load,
    model_files_verify,
)


class Command(BaseCommand):
    help = (
        "Activate the shipped model (or --demo, or --path DIR) when no CT model is "
        "active."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--path",
            help="Model folder (with model.json) to activate, replacing the active "
            "model.",
        )
        source.add_argument(
            "--demo",
            action="store_true",
            help="The demo model trained on synthetic phantoms (trained on first "
            "use) instead of the shipped model.",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Activate the shipped or demo model even when another CT model is "
            "active.",
        )

    def handle(self, *args, path=None, demo=False, replace=False, **options):
        if path:
            return self._activate(self._register(Path(path)))
        active = selectors.model_version_for_study(modality="CT")
        if active is not None and not replace:
            self.stdout.write(f"Active CT model: {active}.")
            if active.is_demo and not demo:
                self.stdout.write(
                    "It is the phantom demo model; `manage.py model_ensure --replace` "
                    f"activates the shipped model ({settings.SHIPPED_MODEL_DIR})."
                )
            return
        folder = self._demo_folder() if demo else self._shipped_copy()
        self._activate(self._register(folder))

    def _shipped_copy(self) -> Path:
        """The shipped model copied to MODELS_DIR/shipped/<name>-<sha>: a registered
        version's files must not change under it when a `git pull` brings a newer
        model into the checkout."""
        source = Path(settings.SHIPPED_MODEL_DIR)
        if not (source / MODEL_JSON).is_file():
            raise CommandError(
                f"No shipped model at {source} (no {MODEL_JSON}; SHIPPED_MODEL_DIR "
                "says where to look). `make demo-model` trains the phantom demo "
                "model instead (a few minutes; for trying the portal only), and "
                "`manage.py model_ensure --path DIR` activates a model of your own."
            )
        try:
            model_files_verify(source, model_card_load(source))
        except ModelFileError as exc:
            raise CommandError(f"{source} is not a usable model: {exc}") from exc
        sha = file_sha256(source / MODEL_JSON)
        folder = Path(settings.MODELS_DIR) / "shipped" / f"{source.name}-{sha[:12]}"
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            # Copied aside and renamed: a start stopped half-way leaves no half model.
            work = Path(tempfile.mkdtemp(prefix=".copy-", dir=folder.parent))
            shutil.copytree(source, work, dirs_exist_ok=True)
            work.rename(folder)
        return folder

    def _demo_folder(self) -> Path:
        folder = Path(settings.MODELS_DIR) / "demo"
        if not (folder / MODEL_JSON).exists():
            self.stdout.write(
                "Training the demo model on synthetic phantoms (a few minutes)..."
            )
            subprocess.run(  # noqa: S603 - this interpreter, our own module
                [sys.executable, "-m", "ml", "demo-model", "--out", str(folder)],
                check=True,
                cwd=settings.BASE_DIR,
            )
        return folder

    def _register(self, folder: Path) -> ModelVersion:
        try:
            return services.model_version_register(path=folder)
        except ModelFileError as exc:
            raise CommandError(f"{folder} is not a usable model: {exc}") from exc

    def _activate(self, version: ModelVersion) -> None:
        if version.status != ModelStatus.ACTIVE:
            services.model_version_activate(version=version, reason="model_ensure")
        self.stdout.write(self.style.SUCCESS(f"Active CT model: {version}."))
