# modelswap: serve a filesystem model store mounted at /models.
# Build: docker build -t modelswap:0.1.0 .   Run: docker run -v models:/models -p 8000:8000 modelswap:0.1.0

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelswap ./modelswap
COPY core ./core
COPY api ./api
# Dependencies come from pyproject.toml; the wheel and its dependencies land in /install.
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV MODELSWAP_ROOT=/models \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    MODELSWAP_PREDICTION_LOG=/tmp/prediction-log \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 modelswap \
    && useradd --system --uid 10001 --gid modelswap --home-dir /app --no-create-home modelswap \
    && mkdir -p /models /tmp/metrics /app \
    && chown modelswap:modelswap /models /tmp/metrics
COPY --from=build /install /usr/local
COPY scripts/retrain.py /app/scripts/retrain.py
WORKDIR /app
VOLUME ["/models"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["modelswap", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
