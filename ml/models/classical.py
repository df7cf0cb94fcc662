"""SVM / random-forest heads on a trained CNN's ``embedding`` features (cnn_svm,
cnn_rf). The head is saved with joblib as ``classifier.joblib`` in the model folder.

Only load ``classifier.joblib`` from a model folder whose sha256 sums were checked
(``ml.modelfile.model_files_verify``): joblib files are pickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLASSIFIER_FILE = "classifier.joblib"
KINDS = ("svm", "rf")


def classical_head_fit(
    *, kind: str, embeddings: np.ndarray, labels: np.ndarray, seed: int = 0
) -> Any:
    """Fit an sklearn classifier with ``predict_proba`` on (N, F) float embeddings
    and (N,) int class indices. ``kind``: ``"svm"`` (standardised RBF SVM,
    Platt-scaled by 3-fold CV) or ``"rf"`` (300 trees). Both balance class weights.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = np.asarray(embeddings, np.float32), np.asarray(labels).astype(int)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"need (N, F) embeddings and (N,) labels: {x.shape}, {y.shape}"
        )
    if len(np.unique(y)) < 2:
        raise ValueError("a classifier needs at least two classes in its labels")
    if kind == "svm":
        svc = SVC(class_weight="balanced", random_state=seed)
        estimator = make_pipeline(
            StandardScaler(),
            CalibratedClassifierCV(svc, method="sigmoid", ensemble=False, cv=3),
        )
    elif kind == "rf":
        estimator = RandomForestClassifier(
            n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1
        )
    else:
        raise ValueError(f"classifier kind {kind!r} is not one of {KINDS}")
    return estimator.fit(x, y)


def classical_head_save(estimator: Any, *, folder: str | Path) -> Path:
    """Write ``folder/classifier.joblib`` and return its path."""
    import joblib

    path = Path(folder) / CLASSIFIER_FILE
    joblib.dump(estimator, path)
    return path


def classical_head_load(*, folder: str | Path) -> Any:
    """Read ``folder/classifier.joblib`` (verify the folder's sha256 sums first)."""
    import joblib

    path = Path(folder) / CLASSIFIER_FILE
    if not path.is_file():
        raise ValueError(f"{folder} holds no {CLASSIFIER_FILE}")
    return joblib.load(path)


def classical_head_predict(estimator: Any, *, embeddings: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) float32 for (N, F) embeddings."""
    return np.asarray(estimator.predict_proba(embeddings), dtype=np.float32)
