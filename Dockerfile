# One image for web, workers and beat; docker-compose.yml chooses the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 portal \
    && mkdir -p /data && chown portal:portal /data

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=portal:portal . .
ENV STATIC_ROOT=/app/staticfiles
RUN DJANGO_SECRET_KEY=build-only DATA_DIR=/tmp/build \
    python manage.py collectstatic --noinput --verbosity 0

USER portal
EXPOSE 8000
CMD ["gunicorn", "stroke_portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "300", "--access-logfile", "-"]
