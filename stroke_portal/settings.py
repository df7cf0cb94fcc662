"""Settings for the Stroke portal. Every value comes from the environment.

The defaults run the portal on one machine with nothing else installed: SQLite, files
under DATA_DIR and a Celery broker kept in folders under DATA_DIR. `.env.example`
documents every variable; `make run` writes a local `.env` with a generated secret key.
"""

import importlib.util
from datetime import timedelta
from pathlib import Path

import environ
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)


def env_text(name: str, default: str = "") -> str:
    """A variable's text, with an empty value (as copied from .env.example) counting
    as unset."""
    return env.str(name, default="") or default


def env_path(name: str, default: Path) -> Path:
    """A folder; a relative value is taken from the project root, not the cwd."""
    value = Path(env_text(name, str(default)))
    return (value if value.is_absolute() else BASE_DIR / value).resolve()


# --- Core -----------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="" if not DEBUG else "insecure-dev")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. `make run` writes one into .env; in production "
        "set it in the environment (see .env.example)."
    )
ALLOWED_HOSTS = [
    h for h in env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"]) if h
]
CSRF_TRUSTED_ORIGINS = [
    o for o in env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[]) if o
]

DATA_DIR = env_path("DATA_DIR", BASE_DIR / "var")
# Uploaded studies, heatmaps and model files: never served directly by the web
# server, only through views that check access.
FILES_ROOT = DATA_DIR / "files"
MEDIA_ROOT = FILES_ROOT
MODELS_DIR = DATA_DIR / "models"
# The hemorrhage model committed with the project: `make run` activates it when no CT
# model is active (manage.py model_ensure copies it under MODELS_DIR first).
SHIPPED_MODEL_DIR = env_path("SHIPPED_MODEL_DIR", BASE_DIR / "models" / "ich-seg-ctich")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "auditlog",
    "accounts",
    "diagnosis",
    "feedback",
    "reports",
    "dicomnode",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so static files keep their long cache lifetimes.
    "accounts.middleware.NoStoreMiddleware",
    "accounts.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Every view needs a login unless it is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.middleware.IdleTimeoutMiddleware",
    "accounts.middleware.PasswordChangeRequiredMiddleware",
    # A page's 404 for a study that is not the user's (or not there) is audited.
    "accounts.middleware.RefusedReadAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Axes must come last: it turns a lockout into the login page with its message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "stroke_portal.urls"
WSGI_APPLICATION = "stroke_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
DATABASES = {
    "default": env.db_url_config(
        env_text("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
    ),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: wait for locks instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------
REDIS_URL = env_text("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            # Redis down is an empty cache, not a 500 on every page.
            "BACKEND": "stroke_portal.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that does not answer costs a page one second, not a hang.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts, sessions, login throttling ---------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Lets an inactive account reach the login form's "awaiting approval" message
    # instead of the generic "wrong password" one; the form still refuses the login.
    "django.contrib.auth.backends.AllowAllUsersModelBackend",
]

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=10)},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]

SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=30)
# The idle timeout is enforced by accounts.middleware.IdleTimeoutMiddleware, which can
# tell the user why they were signed out; the cookie itself lives a little longer.
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60 * 2
# The session (and its expiry) is saved when IdleTimeoutMiddleware records activity,
# at most once a minute.
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "stroke_portal.views.csrf_failure"

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Lock the pair (account, address): a hospital shares few public addresses, so
# locking a whole address would lock out every colleague behind it.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.lockout_response"
# Proxies in front of the portal that append the client's address to
# X-Forwarded-For (docker-compose: nginx, 1). See stroke_portal/client_address.py.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "stroke_portal.client_address.client_address"
AXES_VERBOSE = False

# --- HTTPS ----------------------------------------------------------------------
# Set DJANGO_HTTPS=1 when the portal is served over HTTPS (directly or behind a proxy
# that sets X-Forwarded-Proto).
HTTPS = env.bool("DJANGO_HTTPS", default=False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The portal serves its own scripts and styles (no CDN, no inline script or <style>):
# anything else is refused. The API docs page adds its one inline <style> by hash
# (stroke_portal.views.ApiDocsView). style= attributes stay allowed (style-src-attr
# only): the study page's progress bar and probability strip and the retraining job
# page carry them, and an attribute can neither run code nor load what img-src
# refuses.
CONTENT_SECURITY_POLICY = env_text(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)
# Admins are warned (audit trail page) when one user has this many refused accesses
# to patient data within an hour.
REFUSED_READS_ALERT_THRESHOLD = env.int("REFUSED_READS_ALERT_THRESHOLD", default=20)

# --- E-mail ---------------------------------------------------------------------
EMAIL_CONFIG = env.email_url_config(env_text("EMAIL_URL", "consolemail://"))
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env_text("DEFAULT_FROM_EMAIL", "stroke-portal@localhost")

# --- Static files ---------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "stroke_portal.staticfiles.PackageFileFinder",
]
# Plotly.js from the installed plotly package, served as static/plotly/plotly.min.js:
# charts must work on a hospital network without a CDN. That one file only: the rest
# of plotly's package data is never served.
_plotly = importlib.util.find_spec("plotly")
STATICFILES_PACKAGE_FILES = []
if _plotly is not None and _plotly.submodule_search_locations:
    _plotly_data = Path(_plotly.submodule_search_locations[0]) / "package_data"
    STATICFILES_PACKAGE_FILES.append(("plotly", _plotly_data / "plotly.min.js"))
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "staticfiles")
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": FILES_ROOT},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Pages name the hashed copies ({% static %}), so only those are kept and compressed:
# half of collectstatic's brotli work (plotly.min.js alone takes 8 s).
WHITENOISE_KEEP_ONLY_HASHED_FILES = True
# Source maps are collected (the manifest needs every file a CSS or JS file names) but
# not compressed: only developer tools fetch them, and Swagger UI's and ReDoc's weigh
# 6 MB.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_text("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a missing, wrong or revoked token answers 401 with
    # WWW-Authenticate (DRF answers 403 when the first class is the session's).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "stroke_portal.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stroke portal API",
    "DESCRIPTION": "Upload head CT/MR studies, follow their AI analysis, review them. "
    "AI findings are decision support, not a diagnosis.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the project's own static files: no CDN on a hospital network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ---------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_text("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # A broker with no server process: messages are files under DATA_DIR/broker, so
    # `make run` stays asynchronous without Redis.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Redis gives a message its worker has not acknowledged to another worker only
    # after this long, one value for every queue. It must outlast the longest task, a
    # retraining job (RETRAIN_TIME_LIMIT_SECONDS, 6 h by default), or Redis would start
    # a second copy of a job that still runs. A dead inference worker's study does not
    # wait for it: the sweeper below re-sends it once its lease has run out.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int(
            "BROKER_VISIBILITY_TIMEOUT_SECONDS", default=24 * 3600
        ),
    }
CELERY_RESULT_BACKEND = env_text("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "diagnosis.tasks.*": {"queue": "inference"},
    "feedback.tasks.retrain*": {"queue": "training"},
    "reports.tasks.*": {"queue": "default"},
    # Loading an uploaded model means TensorFlow: the training worker does it.
    "feedback.tasks.model_check_task": {"queue": "training"},
    # Not behind the studies it rescues, nor held up by a dead inference worker.
    "diagnosis.tasks.study_sweep_task": {"queue": "default"},
    # Series kept for viewing only: never ahead of the next study's analysis.
    "diagnosis.tasks.series_read_task": {"queue": "default"},
    "feedback.tasks.job_sweep_task": {"queue": "default"},
    # The DICOM node's work (completing received studies, sending results back to
    # the PACS, alerts): network-bound and light.
    "dicomnode.tasks.*": {"queue": "default"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A pool process reports to its worker only after worker_process_init, where it loads
# the TensorFlow model (diagnosis.tasks._load_active_model, 8-10 s). Celery's default
# of 4 s killed every replacement of a lost pool process before it could report, in a
# loop, while studies waited (issue 13).
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float(
    "CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=60.0
)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "clear-expired-sessions": {
        "task": "accounts.tasks.sessions_clear_expired",
        "schedule": timedelta(hours=6),
    },
}
# Studies whose worker died (a stale heartbeat) or whose message the broker lost (queued
# with an empty queue) are sent again (diagnosis.recovery); a study that has stopped
# its worker STUDY_MAX_ATTEMPTS times is failed instead of killing the next one.
STUDY_SWEEP_SECONDS = env.int("STUDY_SWEEP_SECONDS", default=30)
STUDY_MAX_ATTEMPTS = env.int("STUDY_MAX_ATTEMPTS", default=3)
CELERY_BEAT_SCHEDULE["requeue-stalled-studies"] = {
    "task": "diagnosis.tasks.study_sweep_task",
    "schedule": timedelta(seconds=STUDY_SWEEP_SECONDS),
    # A sweep nobody ran in time is replaced by the next one, not queued up.
    "options": {"expires": STUDY_SWEEP_SECONDS},
}
# Retraining jobs whose training worker died (no heartbeat for 15 minutes) or whose
# message was lost are sent again (feedback/services/recovery.py), up to
# RETRAIN_MAX_ATTEMPTS workers lost; then the job fails with the reason.
RETRAIN_MAX_ATTEMPTS = env.int("RETRAIN_MAX_ATTEMPTS", default=2)
CELERY_BEAT_SCHEDULE["requeue-stalled-retraining-jobs"] = {
    "task": "feedback.tasks.job_sweep_task",
    "schedule": timedelta(seconds=env.int("RETRAIN_SWEEP_SECONDS", default=60)),
    "options": {"expires": 60},
}
# Deliveries whose peer was down (or whose message was lost) are sent again once
# their next attempt is due; alerts whose message was lost likewise.
DICOM_SEND_SWEEP_SECONDS = env.int("DICOM_SEND_SWEEP_SECONDS", default=15)
CELERY_BEAT_SCHEDULE["send-pending-deliveries"] = {
    "task": "dicomnode.tasks.delivery_sweep_task",
    "schedule": timedelta(seconds=DICOM_SEND_SWEEP_SECONDS),
    "options": {"expires": DICOM_SEND_SWEEP_SECONDS, "queue": "default"},
}
CELERY_BEAT_SCHEDULE["send-pending-alerts"] = {
    "task": "dicomnode.tasks.alert_sweep_task",
    "schedule": timedelta(seconds=60),
    "options": {"expires": 60, "queue": "default"},
}
# Retraining when enough confirmed feedback has come in (0 hours = never).
RETRAIN_EVERY_HOURS = env.int("RETRAIN_EVERY_HOURS", default=24 * 7)
if RETRAIN_EVERY_HOURS > 0:
    CELERY_BEAT_SCHEDULE["retrain-on-new-feedback"] = {
        "task": "feedback.tasks.retraining_schedule_check",
        "schedule": timedelta(hours=RETRAIN_EVERY_HOURS),
    }
CELERY_TIMEZONE = TIME_ZONE

# --- Studies --------------------------------------------------------------------
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=2000)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_MB", default=2048) * 1024 * 1024
UPLOAD_MAX_SLICES = env.int("UPLOAD_MAX_SLICES", default=1500)
# Pixels of one study as read: slices larger than 1024 px are read reduced to 1024 px
# on their longest side (the model reads 512 px at most), so a few small PNGs
# declaring 4096x4096 cannot take gigabytes of a worker. Default: 1,500 slices of a
# standard 512x512 CT (a 1.5 GiB float32 volume).
UPLOAD_MAX_STUDY_PIXELS = env.int("UPLOAD_MAX_STUDY_PIXELS", default=1500 * 512 * 512)
# Past UPLOAD_MAX_FILES files or UPLOAD_MAX_MB, diagnosis.forms.UploadLimitHandler
# counts the study upload's files without keeping them, so the form and the API
# answer with the limit; Django's bare 400 comes only past ten times the files.
DATA_UPLOAD_MAX_NUMBER_FILES = 10 * UPLOAD_MAX_FILES
FILE_UPLOAD_HANDLERS = [
    "diagnosis.forms.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = None
# A worker that has not reported progress for this long is presumed dead, and a
# redelivered message may take its study over.
PROCESSING_LEASE_SECONDS = env.int("PROCESSING_LEASE_SECONDS", default=60)
STUDY_SOFT_TIME_LIMIT = env.int("STUDY_TIME_LIMIT_SECONDS", default=600)
HEATMAP_SLICES = env.int("HEATMAP_SLICES", default=3)
# Inference workers load the active model when they start, not on the first study.
WARM_MODEL_ON_WORKER_START = env.bool("WARM_MODEL_ON_WORKER_START", default=True)

# --- Feedback, retraining, model registry ----------------------------------------
# One radiologist's correction counts for training without a second opinion (small
# sites); otherwise a second radiologist or an admin confirms each case.
FEEDBACK_SINGLE_CONFIRMATION = env.bool("FEEDBACK_SINGLE_CONFIRMATION", default=False)
# Folders under which admins may register training data sets.
TRAINING_DATA_DIRS = [
    (BASE_DIR / folder).resolve()
    for folder in env.list("TRAINING_DATA_DIRS", default=[])
    if folder
] or [DATA_DIR / "training-data"]
DATASETS_DIR = DATA_DIR / "datasets"
# Data sets uploaded as a zip (checked in the request, unpacked by the worker).
DATASET_UPLOAD_MAX_BYTES = env.int("DATASET_UPLOAD_MAX_MB", default=4096) * 1024 * 1024
DATASET_UNPACKED_MAX_BYTES = (
    env.int("DATASET_UNPACKED_MAX_MB", default=16384) * 1024 * 1024
)
DATASET_MAX_FILES = env.int("DATASET_MAX_FILES", default=200_000)
TRAINING_RUNS_DIR = DATA_DIR / "training-runs"
# A scheduled retraining runs only when this many confirmed cases are new since the
# last job.
RETRAIN_MIN_NEW_CASES = env.int("RETRAIN_MIN_NEW_CASES", default=20)
RETRAIN_TIME_LIMIT_SECONDS = env.int("RETRAIN_TIME_LIMIT_SECONDS", default=6 * 3600)
# How much worse (AUC and sensitivity on the locked test split) a candidate may be
# than the active model and still be promoted without an override.
PROMOTION_TOLERANCE = env.float("PROMOTION_TOLERANCE", default=0.02)
# Below this study-level specificity on a locked split a model calls most normal
# studies strokes: they would crowd the strokes it finds off the top of the worklist.
PROMOTION_MIN_SPECIFICITY = env.float("PROMOTION_MIN_SPECIFICITY", default=0.5)
# At 20 locked studies (about ten of each class) a specificity of 0.1 (1 normal study
# of 10: CI 0.02-0.40) is told from the 0.5 floor; on fewer the gate cannot tell a
# harmful model from an acceptable one.
PROMOTION_MIN_LOCKED_STUDIES = env.int("PROMOTION_MIN_LOCKED_STUDIES", default=20)

# --- Portal ---------------------------------------------------------------------
PORTAL_NAME = env_text("PORTAL_NAME", "Stroke portal")
INSTITUTION_NAME = env_text("INSTITUTION_NAME")
# A PNG, JPG or SVG printed at the top of every PDF report; empty = none.
INSTITUTION_LOGO = env_text("INSTITUTION_LOGO")

# --- DICOM node (dicomnode/) ----------------------------------------------------
# The listener (C-ECHO, C-STORE SCP), its own process beside web and workers:
# `manage.py dicom_listen`. Only nodes an admin registered may associate.
DICOM_AE_TITLE = env_text("DICOM_AE_TITLE", "STROKEPORTAL")
# Every interface: scanners and PACS reach it over the hospital network.
DICOM_BIND = env_text("DICOM_BIND", "0.0.0.0")  # noqa: S104
DICOM_PORT = env.int("DICOM_PORT", default=11112)
# A study received over DICOM is complete, and queued for analysis, when no instance
# of it has arrived for this long.
DICOM_QUIET_SECONDS = env.float("DICOM_QUIET_SECONDS", default=10.0)
# Where received instances wait until their study is complete.
DICOM_INCOMING_DIR = env_path("DICOM_INCOMING_DIR", DATA_DIR / "incoming")
# The listener completes quiet collections itself, a second after their quiet time;
# beat does it too, as a backup for when the listener is down or busy.
CELERY_BEAT_SCHEDULE["complete-quiet-dicom-studies"] = {
    "task": "dicomnode.tasks.incoming_complete_task",
    "schedule": timedelta(seconds=max(5.0, DICOM_QUIET_SECONDS)),
    "options": {"expires": max(5.0, DICOM_QUIET_SECONDS)},
}
# Results sent back to destinations: attempts before a delivery is marked failed,
# and the first wait between attempts (doubled after each).
DICOM_SEND_ATTEMPTS = env.int("DICOM_SEND_ATTEMPTS", default=6)
DICOM_SEND_RETRY_SECONDS = env.int("DICOM_SEND_RETRY_SECONDS", default=30)
# Browser origins (scheme://host[:port], comma-separated) of DICOMweb viewers such
# as OHIF that may call /dicomweb/ with a user's token; empty = none.
DICOMWEB_CORS_ORIGINS = [o for o in env.list("DICOMWEB_CORS_ORIGINS", default=[]) if o]

# --- Alerts to the stroke team ------------------------------------------------------
# Comma-separated addresses e-mailed when a study becomes ready with a suspected
# finding; empty = no e-mail.
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
# A URL that receives the alert as JSON, signed with HMAC-SHA256 of the body under
# ALERT_WEBHOOK_SECRET; empty = no webhook.
ALERT_WEBHOOK_URL = env_text("ALERT_WEBHOOK_URL")
ALERT_WEBHOOK_SECRET = env_text("ALERT_WEBHOOK_SECRET")
# The patient's name in the webhook body (it leaves the hospital's systems through
# whatever the URL forwards to). Default: off; the body carries the study's link.
ALERT_WEBHOOK_PATIENT_NAME = env.bool("ALERT_WEBHOOK_PATIENT_NAME", default=False)
# The probability above which a finding alerts, per finding (diagnosis.findings);
# a finding not named here alerts when the model calls it (its own threshold).
ALERT_THRESHOLDS = {
    finding: float(value)
    for finding, value in env.dict("ALERT_THRESHOLDS", default={}).items()
}
# The address in alert links (the portal as the stroke team reaches it).
PORTAL_URL = env_text("PORTAL_URL", "http://127.0.0.1:8000")

# --- Logging --------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_text("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "django.security.csrf": {"level": "WARNING"},
        # PDF reports: WeasyPrint and fontTools narrate every rendering step at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
