# Two images from one file:
#   docker build -t incop .                       # worker (default, last stage): training, export, benchmarks, flows
#   docker build --target edge -t incop-edge .    # edge device: pull, verify, predict, roll back, serve (no torch)
# Worker on a GPU: build with
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 -t incop-gpu .
# (the CUDA wheels carry their runtime; the host needs the NVIDIA driver and container toolkit), or set
# BASE to a CUDA image that has Python 3.11.
ARG BASE=python:3.11-slim

# --- edge: the base install only (numpy, onnxruntime, cryptography, fsspec, typer, rich, pillow) ---
FROM python:3.11-slim AS edge
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 incop
WORKDIR /app
COPY pyproject.toml README.md ./
COPY incop_core ./incop_core
COPY flows ./flows
COPY deploy ./deploy
RUN pip install --no-cache-dir . && incop pull --help > /dev/null
USER incop
# e.g. docker run -v /opt/model:/opt/model incop-edge pull --registry http://registry:8765 --name fashion-cnn --dest /opt/model
ENTRYPOINT ["incop"]
CMD ["--help"]

# --- worker: everything (torch first, from the chosen index), serves the nightly deployment ---
FROM ${BASE} AS worker

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 INCOP_HOME=/app

RUN useradd --create-home --uid 10001 incop
WORKDIR /app

RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md prefect.yaml ./
COPY incop_core ./incop_core
COPY flows ./flows
COPY deploy ./deploy
RUN pip install --no-cache-dir ".[pipeline]" && incop --help > /dev/null

USER incop
ENV PREFECT_HOME=/home/incop/.prefect
# Serves the nightly deployment against PREFECT_API_URL; override with e.g.
#   docker run incop prefect worker start --pool gpu
ENTRYPOINT ["incop"]
CMD ["serve"]
