"""Settings of the promotion gate, with the defaults used when stroke_portal.settings
does not set them."""

from django.conf import settings

# Below this study-level specificity on a locked split a model calls most normal
# studies strokes: they would crowd the strokes it finds off the top of the worklist.
DEFAULT_MIN_SPECIFICITY = 0.5
# With fewer locked studies (about ten of each class) one study moves sensitivity or
# specificity by 0.1, five times the gate's tolerance, and a 95% CI of the AUC spans
# about 0.3: the gate cannot tell a better model from a worse one, nor a model
# above the specificity floor from one below it.
DEFAULT_MIN_LOCKED_STUDIES = 20


def promotion_min_specificity() -> float:
    return float(
        getattr(settings, "PROMOTION_MIN_SPECIFICITY", DEFAULT_MIN_SPECIFICITY)
    )


def promotion_min_locked_studies() -> int:
    return int(
        getattr(settings, "PROMOTION_MIN_LOCKED_STUDIES", DEFAULT_MIN_LOCKED_STUDIES)
    )
