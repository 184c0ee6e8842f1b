# taskboard / SGM: one image for web, worker, beat and flower (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (with Flower, which the flower service runs): this layer is rebuilt
# only when pyproject.toml changes. The code itself runs from /app, not from site-packages.
COPY pyproject.toml README.md ./
RUN mkdir -p sgm taskboard \
    && touch sgm/__init__.py taskboard/__init__.py \
    && pip install '.[flower]' \
    && pip uninstall -y taskboard \
    && rm -rf sgm taskboard build ./*.egg-info

COPY . .
# Static files collected and hashed at build time; whitenoise serves them.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput

# Never run as root.
RUN useradd --create-home --uid 10001 sgm \
    && rm -rf /app/var && mkdir -p /app/var && chown -R sgm:sgm /app/var
USER sgm

EXPOSE 8000
CMD ["gunicorn", "sgm.wsgi:application", "--bind", "0.0.0.0:8000"]
