#!/usr/bin/env bash
# Set up a fresh machine for incop: the FashionMNIST package (Debian, as root), a .venv with
# torch from the local wheels, and the project with its pins and every extra (pipeline, test).
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=/usr/share/datasets/fashion-mnist
if [ ! -d "$DATA" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing dataset-fashion-mnist" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24" >/dev/null
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    echo "bootstrap: installing torch 2.14.1 / torchvision 0.29.1" >&2
    .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install -q -e ".[pipeline,test]"
echo "bootstrap: ready (.venv)" >&2
