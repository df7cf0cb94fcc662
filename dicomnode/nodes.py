"""Admin pages for the DICOM node registry: the scanners and PACS that may send
studies (and receive results), and the sites they belong to."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import AuditContext
from accounts.models import Site
from accounts.permissions import admin_required

from . import registry
from .models import DicomNode

#: DICOM AE titles (PS3.5 VR AE): 1-16 characters of the default repertoire, no
#: backslash or control characters; leading and trailing spaces are not
#: significant, and a title of spaces only is not a title.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def ae_title_validate(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError("An AE title needs 1 to 16 characters.")
    if len(value) > 16:
        raise ValidationError(f"An AE title has at most 16 characters ({len(value)}).")
    if not _AE_TITLE.match(value):
        raise ValidationError(
            "An AE title may hold letters, digits, spaces and printable ASCII "
            "punctuation, except a backslash."
        )
    return value


class NodeForm(forms.ModelForm):
    class Meta:
        model = DicomNode
        # What an admin edits: every audited field but `active` (its own button).
        fields = [f for f in registry.NODE_FIELDS if f != "active"]
        help_texts = {
            "host": "Optional: only this address may send as this AE title.",
            "port": "Its own DICOM port, where results are sent (destinations).",
            "site": "Clinicians of this site see the studies it sends.",
        }

    def clean_ae_title(self):
        return ae_title_validate(self.cleaned_data.get("ae_title", ""))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("receives_results") and not (
            cleaned.get("host") and cleaned.get("port")
        ):
            raise ValidationError("A node that receives results needs a host and port.")
        return cleaned


class SiteCreateForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = ["name"]


@admin_required
def node_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dicomnode/nodes.html",
        {
            "nodes": DicomNode.objects.select_related("site"),
            "sites": Site.objects.all(),
            "site_form": SiteCreateForm(),
            "portal_ae_title": settings.DICOM_AE_TITLE,
            "portal_port": settings.DICOM_PORT,
        },
    )


@admin_required
def node_create(request: HttpRequest) -> HttpResponse:
    return _node_form(request, DicomNode())


@admin_required
def node_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _node_form(request, get_object_or_404(DicomNode, pk=pk))


def _node_form(request: HttpRequest, node: DicomNode) -> HttpResponse:
    form = NodeForm(request.POST or None, instance=node)
    if request.method == "POST" and form.is_valid():
        saved = registry.node_save(
            node=form.save(commit=False),
            by=request.user,
            audit=AuditContext.of(request),
        )
        messages.success(request, f"{saved.ae_title} is saved.")
        return redirect("dicomnode:node-list")
    return render(request, "dicomnode/nodes_form.html", {"form": form, "node": node})


@admin_required
@require_POST
def node_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    node = registry.node_deactivate(
        node=get_object_or_404(DicomNode, pk=pk),
        by=request.user,
        audit=AuditContext.of(request),
    )
    messages.success(request, f"{node.ae_title} can no longer associate.")
    return redirect("dicomnode:node-list")


@admin_required
@require_POST
def site_create(request: HttpRequest) -> HttpResponse:
    form = SiteCreateForm(request.POST)
    if form.is_valid():
        site = registry.site_create(
            name=form.cleaned_data["name"],
            by=request.user,
            audit=AuditContext.of(request),
        )
        messages.success(request, f"Site {site.name} is added.")
    else:
        messages.error(request, " ".join(form.errors.get("name", ["Invalid name."])))
    return redirect("dicomnode:node-list")
