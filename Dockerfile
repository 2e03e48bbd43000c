# syntax=docker/dockerfile:1
# One image for both `edge-allocator operator` and `edge-allocator extender`, with the shipped
# model inside. Build from the repository root:
#
#   docker build -t edge-allocator:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=https://mirror.example/whl/cpu -t edge-allocator .
#
# Where CPU-only torch comes from (no CUDA libraries: ~1 GiB instead of ~5 GiB):
# - default: the PyTorch CPU wheel index (TORCH_INDEX_URL, TORCH_VERSION), into the virtualenv;
# - TORCH_INDEX_URL="": the torch the base image already has. `edge-allocator dev image` (no
#   Docker engine, only Debian mirrors) builds this same file with buildah from a local Debian
#   trixie base (debootstrap) with Debian's CPU-only python3-torch and python3 3.13:
#     --build-arg PYTHON_IMAGE=localhost/edge-allocator-base:<tag> --build-arg TORCH_INDEX_URL=
#   The virtualenv then sees the base's packages (--system-site-packages).
#
# The final stage has no compilers and no pip: only the Python runtime and the virtualenv.

ARG PYTHON_IMAGE=python:3.13-slim-trixie

FROM ${PYTHON_IMAGE} AS build
# Where CPU-only torch wheels come from; point it at a mirror when download.pytorch.org is
# not reachable from the build (any index serving the "+cpu" wheels works), or set it empty to
# use the torch of the base image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.15.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/sh", "-eu", "-c"]
# torch first (the slowest layer), from the CPU index, so code changes do not re-download it.
RUN if [ -n "${TORCH_INDEX_URL}" ]; then \
        python -m venv /opt/venv \
        && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    else \
        python -m venv --system-site-packages /opt/venv \
        && python -c "import torch; print('torch', torch.__version__, 'from the base image')"; \
    fi
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The package itself; its dependency ranges live in pyproject.toml (DL3013 asks for pins).
# hadolint ignore=DL3013
RUN pip install . \
    && python -c "import edge_allocator.cli, torch; assert not torch.cuda.is_available()" \
    && pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="edge-allocator" \
      org.opencontainers.image.description="Edge Allocator operator and scheduler extender" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/edge-allocator/edge-allocator"
SHELL ["/bin/sh", "-eu", "-c"]
# No pip/setuptools in the image that runs: nothing can be installed at run time (a Debian
# base has no pip to remove).
RUN if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes pip setuptools wheel; \
    fi \
    && groupadd --system --gid 10001 edge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin edge
COPY --from=build /opt/venv /opt/venv
COPY models /opt/edge-allocator/models
ENV PATH=/opt/venv/bin:$PATH \
    EDGE_ALLOCATOR_MODELS_DIR=/opt/edge-allocator/models \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1
USER 10001:10001
WORKDIR /tmp
# 8443: extender HTTPS (verbs, admin API, /metrics, /ui); 8081: operator /metrics and /healthz.
EXPOSE 8443 8081
ENTRYPOINT ["edge-allocator"]
CMD ["--help"]
