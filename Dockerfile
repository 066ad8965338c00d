# syntax=docker/dockerfile:1
# cmdb-worker image: a virtualenv with the project wheel and its dependencies, run as uid 10001.
#   docker build -t cmdb-worker:0.1.0 .
#   docker run --rm -p 9108:9108 -e CMDB_WORKER_BOOTSTRAP_SERVERS=kafka:9092 cmdb-worker:0.1.0

# The base image, pinned by the digest of its multi-platform index so every build starts from the
# same bytes (a tag moves with every Debian/Python patch). To move to a newer base, with access to
# Docker Hub:
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
#   (or: crane digest python:3.11-slim-bookworm; skopeo inspect docker://python:3.11-slim-bookworm)
# and replace the digest below; keep the tag in front of it for readers. tests/test_packaging.py
# checks that a digest is there. It was not pullable from the workspace it was written in: verify
# it once (`docker pull <the line below>`) before relying on it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# --- build: wheel of the project, installed with its dependencies into /opt/venv -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# README.md is the project's readme (pyproject); the glob keeps COPY valid while it is absent.
COPY pyproject.toml README.md* LICENSE constraints.txt ./
COPY worker ./worker
COPY schemas ./schemas
COPY rules ./rules
# Dependencies at the versions constraints.txt pins (the lock CI tests with).
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install -c constraints.txt /dist/cmdb_worker-*.whl \
 && /opt/venv/bin/python -c "import worker, rules, schemas" \
 && /opt/venv/bin/python -m compileall -q /opt/venv

# --- runtime: no build tools, no source tree, non-root ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CMDB_WORKER_HTTP_PORT=9108
RUN groupadd --system --gid 10001 cmdb \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cmdb
COPY --from=build /opt/venv /opt/venv
# Numeric uid:gid so Kubernetes' runAsNonRoot check can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CMDB_WORKER_HTTP_PORT', '9108') + '/healthz', timeout=2)"]
ENTRYPOINT ["cmdb-worker"]
CMD ["run"]
