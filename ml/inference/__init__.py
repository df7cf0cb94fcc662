"""Predict stroke on one study with a saved model: ``Predictor.load(path)`` then
``predictor.predict(load_result)`` and ``predictor.explain(load_result, slices=...)``.

Importing this package does not import TensorFlow or Keras (Celery prefork workers
must not have TensorFlow loaded before they fork); :meth:`Predictor.load` does.

Speed: the slices of a study go through one compiled ``tf.function`` in fixed-size
batches (the last padded, so the graph is traced once), or through onnxruntime when
the model folder holds a ``model.onnx`` (see ``ml.onnx_export``) that matches Keras
within 1e-4 on a check batch at load time.
"""

from ml.inference.predictor import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    OnnxStatus,
    Predictor,
    Progress,
)
from ml.inference.results import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_TOP_K,
    SUSPICIOUS_SLICES,
    OutsideModelScope,
    StudyPrediction,
    aggregate_slices,
    label_and_confidence,
    temperature_sigmoid,
    temperature_softmax,
    top_k_indices,
)
from ml.modelfile import ModelFileError

__all__ = [
    "AGGREGATIONS",
    "BACKENDS",
    "DEFAULT_AGGREGATION",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TOP_K",
    "SUSPICIOUS_SLICES",
    "ModelFileError",
    "OnnxStatus",
    "OutsideModelScope",
    "Predictor",
    "Progress",
    "StudyPrediction",
    "aggregate_slices",
    "label_and_confidence",
    "temperature_sigmoid",
    "temperature_softmax",
    "top_k_indices",
]
