"""DICOMweb under /dicomweb/ (included from stroke_portal/urls.py): QIDO-RS and
WADO-RS (GET, dicomnode/dicomweb.py) and STOW-RS (POST, dicomnode/stow.py). The
standard puts a search and a store on the same path (`studies`, `studies/{uid}`):
there one view per method answers."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import dicomweb_urls, stow

app_name = "dicomweb"


def _by_method(*, get, post):
    """GET, HEAD and OPTIONS (the CORS preflight) to `get`, POST to `post`; any
    other method to `get`, which answers 405 naming what it allows. Exempt from
    CSRF and from the login redirect as DRF's own views are: both authenticate
    themselves (a token, or the session with CSRF) and answer 401/403/404."""

    @login_not_required
    @csrf_exempt
    def view(request, *args, **kwargs):
        if request.method == "POST":
            # STOW names the study in its path `study_uid`.
            if "study" in kwargs:
                kwargs["study_uid"] = kwargs.pop("study")
            return post(request, *args, **kwargs)
        return get(request, *args, **kwargs)

    # What DRF's as_view() exposes, for the URL audit (tests/test_url_authorization.py
    # reads the roles of the GET view; STOW's are tested in dicomnode/tests).
    view.cls, view.initkwargs, view.post_cls = get.cls, get.initkwargs, post.cls
    return view


_store = stow.StudyStoreApi.as_view()
_reads = {p.name: p for p in dicomweb_urls.urlpatterns}
studies = _by_method(get=_reads["studies"].callback, post=_store)
study = _by_method(get=_reads["study"].callback, post=_store)

urlpatterns = [
    path("studies", studies, name="studies"),
    path("studies", studies, name="stow"),
    path(dicomweb_urls.STUDY, study, name="study"),
    path("studies/<str:study>", study, name="stow-study"),
    *(p for p in dicomweb_urls.urlpatterns if p.name not in ("studies", "study")),
]
