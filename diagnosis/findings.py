"""The words of an AI result: the one place that says what a model's finding is
called, so that the study page, the lists and every export say the same thing.

A model card declares its finding in ``card["extra"]["finding"]``: "hemorrhage",
"stroke" or "stroke_type" (absent or unknown: "stroke" for a binary model,
"stroke_type" for a type model). The model's label stays "stroke"/"normal"; for a
hemorrhage model "stroke" means "suspected intracranial hemorrhage".
"""

from __future__ import annotations

from dataclasses import dataclass

HEMORRHAGE, STROKE, STROKE_TYPE = "hemorrhage", "stroke", "stroke_type"
FINDINGS = (HEMORRHAGE, STROKE, STROKE_TYPE)

_POSITIVE = {
    HEMORRHAGE: "Suspected intracranial hemorrhage",
    STROKE: "Suspected stroke",
    STROKE_TYPE: "Suspected stroke",
}
_NEGATIVE = {
    HEMORRHAGE: "No hemorrhage suspected",
    STROKE: "No stroke suspected",
    STROKE_TYPE: "No stroke suspected",
}
#: What a model looks for, for titles and codes' texts ("AI decision support for
#: intracranial hemorrhage").
FINDING_NAMES = {
    HEMORRHAGE: "intracranial hemorrhage",
    STROKE: "stroke",
    STROKE_TYPE: "stroke and its type",
}
# What a negative result of a model that looks for one finding leaves open, when its
# card does not say: a CT without a bleed is where an ischemic stroke still hides.
_LEFT_OPEN = {HEMORRHAGE: "an ischemic stroke"}


@dataclass(frozen=True)
class FindingWords:
    """How one AI result reads.

    ``title``: "Suspected intracranial hemorrhage"; ``volume``: "12 mL" or "";
    ``headline``: both ("Suspected intracranial hemorrhage · 12 mL");
    ``caveat``: what a negative result does not exclude ("this does not exclude an
    ischemic stroke"), "" otherwise.
    """

    finding: str
    positive: bool
    title: str
    volume: str
    headline: str
    caveat: str


@dataclass(frozen=True)
class Mark:
    """A marker shown beside a result (``label``) and its one-line ``explanation``."""

    label: str
    explanation: str


OUTSIDE_SCOPE = Mark(
    label="Outside what the model was trained for",
    explanation="The study is not what the model was made for, so it gives no "
    "probability; read the study without AI support.",
)
DEMO = Mark(
    label="Demo model",
    explanation="Demo model trained on synthetic phantoms — its results on real "
    "scans are not meaningful.",
)


def card_extra(card: dict | None) -> dict:
    extra = card.get("extra") if isinstance(card, dict) else None
    return extra if isinstance(extra, dict) else {}


def card_finding(card: dict | None) -> str:
    """The finding a model card declares, or its task's default."""
    finding = card_extra(card).get("finding")
    if finding in FINDINGS:
        return finding
    task = card.get("task") if isinstance(card, dict) else None
    return STROKE_TYPE if task == "type" else STROKE


def volume_words(volume_ml: float | None) -> str:
    """ "< 1 mL" below 1 mL, whole mL above; "" when unknown."""
    if volume_ml is None:
        return ""
    if volume_ml < 1:
        return "< 1 mL"
    return f"{volume_ml:.0f} mL"


def finding_words(
    *,
    card: dict | None,
    label: str,
    stroke_type: str = "",
    volume_ml: float | None = None,
    finding: str = "",
) -> FindingWords:
    """The words of a result with ``label`` ("stroke"/"normal") by the model whose
    ``card`` (ModelVersion.card) made it. ``finding``: the finding stored with the
    result (Study.ai_finding), for a list that does not read model cards."""
    finding = finding if finding in FINDINGS else card_finding(card)
    positive = label == "stroke"
    if positive:
        kind = f" ({stroke_type})" if stroke_type and finding != HEMORRHAGE else ""
        title = _POSITIVE[finding] + kind
    else:
        title = _NEGATIVE[finding]
    volume = volume_words(volume_ml) if positive else ""
    return FindingWords(
        finding=finding,
        positive=positive,
        title=title,
        volume=volume,
        headline=f"{title} · {volume}" if volume else title,
        caveat="" if positive else _caveat(card, finding),
    )


def finding_name(words: FindingWords | None) -> str:
    """What the model that spoke these words looks for ("intracranial
    hemorrhage"); "stroke" when there are none (the model declined the study)."""
    return FINDING_NAMES[words.finding] if words is not None else FINDING_NAMES[STROKE]


def _caveat(card: dict | None, finding: str) -> str:
    left_open = str(card_extra(card).get("cannot_exclude") or "").strip()
    left_open = left_open or _LEFT_OPEN.get(finding, "")
    return f"this does not exclude {left_open}" if left_open else ""


def outside_scope_words(reason: str) -> str:
    """ "Outside what the model was trained for: <reason>"."""
    reason = reason.strip().rstrip(".")
    return f"{OUTSIDE_SCOPE.label}: {reason}" if reason else OUTSIDE_SCOPE.label
