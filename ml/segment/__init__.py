"""Hemorrhage segmentation: a small U-Net on the brain-aligned slice
(``ml.brain``) that outputs a per-pixel bleed probability, trained on the pixel
masks of real bleeds and on synthetic hyperdense lesions pasted into normal slices.

From the pixel probabilities (``ml.segment.scores``): a slice score, a study score
from brain slices, the lesion contour on every slice and the bleed volume in mL.
Importing this package does not import TensorFlow.
"""

ARCHITECTURE = "hemorrhage_seg"
