"""Synthetic head-CT phantoms in Hounsfield units, with and without stroke lesions.

A phantom is an axial stack from the skull base (slice 0) to near the vertex: scalp,
a skull with cortical tables and diploë, a thin CSF rim, grey matter with gyri and
sulci over white matter, ventricles, basal ganglia and, in the lowest slices,
petrous bone and sinus air. Lesions are an intraparenchymal or subdural hemorrhage
(hyperdense) or an ischemic infarct (hypodense wedge in an arterial territory).

The phantoms feed tests and the demo model; they are not anatomy. Image rows run
anterior → posterior and columns patient right → left, as on a radiology screen.

Modules: ``anatomy`` (head shape, one slice's tissues), ``lesions`` (hemorrhage and
infarct shapes and densities), ``phantom`` (a whole study: ``make_phantom``),
``dicom`` and ``images`` (writers), ``dataset`` (a labelled folder of studies).
"""

from ml.synthetic.anatomy import (
    FOV_MM,
    HEAD_HEIGHT_MM,
    HU_AIR,
    HU_CSF,
    HU_GREY,
    HU_SCALP,
    HU_WHITE,
    SKULL_BASE_Z,
)
from ml.synthetic.dataset import (
    MIXED,
    SYNTH_FORMATS,
    SynthStudy,
    is_synthetic_dataset,
    synthesize_dataset,
)
from ml.synthetic.dicom import COMPRESSIONS, RESCALE_INTERCEPT, write_dicom_series
from ml.synthetic.images import (
    phantom_montage,
    window_to_uint8,
    write_mask,
    write_png_slices,
)
from ml.synthetic.phantom import LABELS, LESION_KINDS, Phantom, make_phantom

__all__ = [
    "COMPRESSIONS",
    "FOV_MM",
    "HEAD_HEIGHT_MM",
    "HU_AIR",
    "HU_CSF",
    "HU_GREY",
    "HU_SCALP",
    "HU_WHITE",
    "LABELS",
    "LESION_KINDS",
    "MIXED",
    "RESCALE_INTERCEPT",
    "SKULL_BASE_Z",
    "SYNTH_FORMATS",
    "Phantom",
    "SynthStudy",
    "is_synthetic_dataset",
    "make_phantom",
    "phantom_montage",
    "synthesize_dataset",
    "window_to_uint8",
    "write_dicom_series",
    "write_mask",
    "write_png_slices",
]
