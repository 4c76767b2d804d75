# syntax=docker/dockerfile:1
# One image for all four services:  python -m lifecycle_<svc> serve | migrate
# (ingest, stage_engine, messaging, loyalty). Only the four services and lifecycle-shared are
# installed: the dev-only tools/devstack member (embedded broker and PostgreSQL) is left out.

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.8
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
ARG PACKAGES="--package lifecycle-ingest --package lifecycle-stage-engine --package lifecycle-messaging --package lifecycle-loyalty"
WORKDIR /app

# Third-party dependencies first: this layer is reused until uv.lock or a pyproject changes.
# (tools/devstack/pyproject.toml is needed for uv to read the workspace; its code is not.)
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/stage-engine/pyproject.toml services/stage-engine/
COPY services/messaging/pyproject.toml services/messaging/
COPY services/loyalty/pyproject.toml services/loyalty/
COPY tools/devstack/pyproject.toml tools/devstack/
RUN uv sync --frozen --no-dev --no-install-workspace $PACKAGES

# Then the workspace members, installed as regular (non-editable) packages so the runtime stage
# needs nothing but the virtual environment.
COPY shared/src shared/src
COPY services/ingest/src services/ingest/src
COPY services/stage-engine/src services/stage-engine/src
COPY services/messaging/src services/messaging/src
COPY services/loyalty/src services/loyalty/src
RUN uv sync --frozen --no-dev --no-editable $PACKAGES

FROM python:3.11-slim
RUN groupadd --system --gid 10001 lifecycle \
    && useradd --system --uid 10001 --gid lifecycle --no-create-home --home-dir /app lifecycle
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000 8001 8002 8003
# A default only: docker-compose.yml and the Kubernetes manifests set each service's command.
CMD ["python", "-m", "lifecycle_ingest", "serve"]
