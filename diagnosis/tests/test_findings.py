"""The words of an AI result, as every page and export shows them."""

import pytest

from diagnosis.findings import (
    DEMO,
    OUTSIDE_SCOPE,
    finding_words,
    outside_scope_words,
    volume_words,
)

HEMORRHAGE_CARD = {"task": "binary", "extra": {"finding": "hemorrhage"}}


def test_finding_words_name_a_bleed_and_its_volume():
    words = finding_words(card=HEMORRHAGE_CARD, label="stroke", volume_ml=12.4)
    assert words.positive and words.finding == "hemorrhage"
    assert words.headline == "Suspected intracranial hemorrhage · 12 mL"
    assert words.caveat == ""


def test_finding_words_say_a_negative_bleed_model_leaves_ischemia_open():
    words = finding_words(card=HEMORRHAGE_CARD, label="normal", volume_ml=0.2)
    assert words.headline == "No hemorrhage suspected"
    assert words.caveat == "this does not exclude an ischemic stroke"


def test_finding_words_take_what_cannot_be_excluded_from_the_card():
    card = {"extra": {"finding": "hemorrhage", "cannot_exclude": "a thin subdural"}}
    words = finding_words(card=card, label="normal")
    assert words.caveat == "this does not exclude a thin subdural"


@pytest.mark.parametrize(
    ("card", "label", "stroke_type", "headline"),
    [
        ({"task": "binary"}, "stroke", "", "Suspected stroke"),
        ({"task": "binary"}, "normal", "", "No stroke suspected"),
        ({"task": "type"}, "stroke", "ischemic", "Suspected stroke (ischemic)"),
        ({}, "stroke", "hemorrhagic", "Suspected stroke (hemorrhagic)"),
        # A card's free-text finding that is not one of the agreed words.
        ({"extra": {"finding": "bleed"}}, "normal", "", "No stroke suspected"),
        (None, "stroke", "", "Suspected stroke"),
    ],
)
def test_finding_words_of_stroke_models(card, label, stroke_type, headline):
    words = finding_words(card=card, label=label, stroke_type=stroke_type)
    assert words.headline == headline
    assert words.caveat == ""


@pytest.mark.parametrize(
    ("volume", "text"),
    [(None, ""), (0.0, "< 1 mL"), (0.99, "< 1 mL"), (1.0, "1 mL"), (12.6, "13 mL")],
)
def test_volume_words(volume, text):
    assert volume_words(volume) == text


def test_outside_scope_and_demo_words():
    reason = "it does not look like an axial head CT; the model reads head CT only."
    assert outside_scope_words(reason) == (
        "Outside what the model was trained for: it does not look like an axial "
        "head CT; the model reads head CT only"
    )
    assert outside_scope_words("") == OUTSIDE_SCOPE.label
    assert "synthetic phantoms" in DEMO.explanation
