"""Make sure an AI model is active for CT: register and activate the given model
folder, or (with --demo) train the small demo model on synthetic phantoms when no
model is active yet. `make run` calls this."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from feedback import selectors, services
from ml.modelfile import ModelFileError


class Command(BaseCommand):
    help = (
        "Register and activate a model folder, or the demo model when none is active."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--path", help="Model folder (with model.json) to activate."
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Train and activate the demo model if no CT model is active.",
        )

    def handle(self, *args, path=None, demo=False, **options):
        if path:
            return self._activate(Path(path))
        active = selectors.model_version_for_study(modality="CT")
        if active is not None:
            self.stdout.write(f"Active CT model: {active}.")
            return
        if not demo:
            raise CommandError("No CT model is active; pass --path DIR or --demo.")
        folder = Path(settings.MODELS_DIR) / "demo"
        if not (folder / "model.json").exists():
            self.stdout.write(
                "No model yet: training the demo model on synthetic "
                "phantoms (a few minutes on first start)..."
            )
            subprocess.run(  # noqa: S603 - this interpreter, our own module
                [sys.executable, "-m", "ml", "demo-model", "--out", str(folder)],
                check=True,
                cwd=settings.BASE_DIR,
            )
        self._activate(folder)

    def _activate(self, folder: Path) -> None:
        try:
            version = services.model_version_register(path=folder)
        except ModelFileError as exc:
            raise CommandError(f"{folder} is not a usable model: {exc}") from exc
        services.model_version_activate(version=version, reason="model_ensure")
        self.stdout.write(self.style.SUCCESS(f"Active CT model: {version}."))
