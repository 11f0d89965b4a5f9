# syntax=docker/dockerfile:1
# Servometer on CPU, with the demo models built into the image. Mount your own repository over /models to serve
# other models (docker run -v "$PWD/models:/models:ro" ...). Linted with hadolint in the tests; no Docker engine
# ran it on the machine it was written on (see the README).
#
# Stages: deps (the serving virtualenv), models (build tools on top, trains and exports the demo models), and the
# final image with only the serving virtualenv, the built models and a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# torch's own index serves the CPU-only wheel; PyPI's default build pulls gigabytes of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM ${PYTHON_IMAGE} AS deps
ARG TORCH_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
# The project itself: its dependencies are pinned by range in pyproject.toml, as for any other install.
# hadolint ignore=DL3013
RUN pip install --extra-index-url "${TORCH_INDEX}" ".[cpu,torch,report]"

FROM deps AS models
ARG TORCH_INDEX
# hadolint ignore=DL3013
RUN pip install --extra-index-url "${TORCH_INDEX}" ".[cpu,torch,report,build]"
COPY models /models
RUN servometer models build --models /models

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SERVOMETER_HOST=0.0.0.0 \
    SERVOMETER_PORT=8000 \
    SERVOMETER_GRPC_PORT=8001 \
    SERVOMETER_MODELS=/models
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin servometer
COPY --from=deps /opt/venv /opt/venv
COPY --from=models --chown=root:root /models /models
USER 10001
# HTTP and the Open Inference Protocol's gRPC service (Triton's ports).
EXPOSE 8000 8001
# Ready means every required model's default variant is loaded; slim images have no curl, so Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status != 200)"]
# The image's models are built already: never train at start-up.
CMD ["servometer", "serve", "--no-build"]
