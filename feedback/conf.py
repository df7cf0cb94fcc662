"""Settings of the promotion gate, with the defaults used when stroke_portal.settings
does not set them."""

from django.conf import settings

# Below this study-level specificity on a locked split a model calls most normal
# studies strokes: they would crowd the strokes it finds off the top of the worklist.
DEFAULT_MIN_SPECIFICITY = 0.5
# At 20 locked studies (about ten of each class) one study still moves sensitivity or
# specificity by 0.1 and an AUC's 95% CI spans about 0.4, but a specificity of 0.1
# (1 normal study of 10: CI 0.02-0.40) is told from the 0.5 floor. On fewer the gate
# cannot tell a harmful model from an acceptable one.
DEFAULT_MIN_LOCKED_STUDIES = 20


def promotion_min_specificity() -> float:
    return float(
        getattr(settings, "PROMOTION_MIN_SPECIFICITY", DEFAULT_MIN_SPECIFICITY)
    )


def promotion_min_locked_studies() -> int:
    return int(
        getattr(settings, "PROMOTION_MIN_LOCKED_STUDIES", DEFAULT_MIN_LOCKED_STUDIES)
    )
