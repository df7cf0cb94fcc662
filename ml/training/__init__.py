"""Training: ``train_model(manifest=..., data_root=..., config=TrainConfig(...),
out_dir=...) -> TrainResult``.

Importing this package is cheap (no TensorFlow): the portal may build a
:class:`TrainConfig` in a web process; ``train_model`` loads Keras when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ml.training.config import ProgressCallback, TrainConfig, TrainResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ml.datasets import ManifestRow


def train_model(
    *,
    manifest: str | Path | Sequence[ManifestRow],
    data_root: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """See :func:`ml.training.run.train_model` (imported lazily: it loads Keras).

    ``architecture="lesion_features"`` trains the lesion-feature model
    (:func:`ml.lesion.train.lesion_train`: features and a logistic regression, no
    network, no slice cache, no TensorFlow)."""
    if config.architecture == "lesion_features":
        from ml.lesion.train import lesion_train

        return lesion_train(
            rows=ml_rows(manifest),
            data_root=data_root,
            config=config,
            out_dir=out_dir,
            progress=progress,
        )
    from ml.training.run import train_model as run

    return run(
        manifest=manifest,
        data_root=data_root,
        config=config,
        out_dir=out_dir,
        progress=progress,
    )


def ml_rows(manifest: str | Path | Sequence[ManifestRow]) -> list[ManifestRow]:
    """The rows of a manifest CSV path, or the rows given."""
    from ml.datasets import read_manifest

    if isinstance(manifest, (str, Path)):
        return read_manifest(manifest)
    return list(manifest)


__all__ = ["ProgressCallback", "TrainConfig", "TrainResult", "train_model"]
