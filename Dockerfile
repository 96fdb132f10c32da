# Antiphon's GPU server image.
#   docker build -t antiphon .                                   (CUDA + PyTorch base, see BASE_IMAGE)
#   docker run --gpus all -p 8998:8998 -v /path/to/weights:/weights antiphon --model /weights/MODEL
# BASE_IMAGE must provide python3 (3.10+) with venv and pip; the official PyTorch image for the torch
# this project pins (2.13.0) already holds torch, which the install then uses instead of fetching it.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}
# Optional: a folder of wheels (mounted into the build) for offline or air-gapped builds.
ARG PIP_FIND_LINKS=""

# libopus: the server codes every session's Ogg Opus through it (ctypes, off the event loop). The
# distribution's current build is the right one for the base, so its version is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libopus0 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 antiphon \
    && useradd --create-home --uid 10001 --gid 10001 antiphon \
    && mkdir -p /opt/antiphon /weights /cache \
    && chown 10001:10001 /opt/antiphon /weights /cache
WORKDIR /opt/antiphon
COPY --chown=10001:10001 . .
USER 10001:10001
RUN ./install.sh --system-packages && rm -rf /home/antiphon/.cache/pip
# --compile's kernels, kept on a volume so that a new container does not compile for minutes again
ENV PATH=/opt/antiphon/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TORCHINDUCTOR_CACHE_DIR=/cache/inductor

VOLUME ["/weights", "/cache"]
EXPOSE 8998
HEALTHCHECK --interval=15s --timeout=3s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8998/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
# Python is PID 1 here: the server itself handles SIGTERM (drains live sessions, then exits 0).
ENTRYPOINT ["antiphon", "serve", "--host", "0.0.0.0", "--port", "8998"]
CMD ["--model", "test-small", "--random-weights", "--device", "cuda"]
