# incop worker image (minimal until the flows issue adds the Prefect entrypoint).
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
ARG TORCH_INDEX_URL=""
RUN useradd --create-home incop
WORKDIR /app
COPY pyproject.toml README.md ./
COPY incop_core ./incop_core
COPY flows ./flows
COPY deploy ./deploy
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url $TORCH_INDEX_URL} $TORCH_SPEC \
    && pip install --no-cache-dir .
USER incop
ENTRYPOINT ["incop"]
CMD ["--help"]
