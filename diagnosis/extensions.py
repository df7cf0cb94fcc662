"""What the apps built on diagnosis provide to it, registered from their
`AppConfig.ready()`: diagnosis calls these hooks and never imports the apps above it
(accounts <- diagnosis <- feedback, reports, dicomnode).

- the **model chooser**: which model version analyses a study (the registry of model
  versions lives in feedback, beside the retraining jobs that make them);
- **study page parts**: extra context for the study page, and templates of panels
  to show on it (feedback's cases, dicomnode's deliveries and alerts).

A hook nobody registered answers as an empty registry would: no model, no parts.
"""

from collections.abc import Callable
from typing import Any

#: (modality=...) -> a model version (with .path, .sha256, .threshold, ...) or None.
ModelChooser = Callable[..., Any]
#: (user=..., study=...) -> context for the study page. A "study_panels" entry is a
#: list of template names, included in the page's side column in registration order.
PagePart = Callable[..., dict[str, Any]]

_model_chooser: ModelChooser | None = None
_page_parts: list[PagePart] = []


def provide_model_chooser(chooser: ModelChooser) -> None:
    global _model_chooser
    _model_chooser = chooser


def model_version_for_study(*, modality: str) -> Any:
    """The active model version for a study of `modality`, or None."""
    if _model_chooser is None:
        return None
    return _model_chooser(modality=modality)


def add_study_page_part(part: PagePart) -> None:
    # ready() may run more than once in tests (app registry reloads): register once.
    if part not in _page_parts:
        _page_parts.append(part)


def study_page_parts(*, user, study) -> dict[str, Any]:
    context: dict[str, Any] = {"study_panels": []}
    for part in _page_parts:
        extra = dict(part(user=user, study=study))
        context["study_panels"] += extra.pop("study_panels", [])
        context.update(extra)
    return context
