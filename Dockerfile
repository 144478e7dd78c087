# One image for both processes: `gateway serve` (default) and `gateway worker`.
# Build stage: install the project into a virtualenv; the final stage copies only that.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY handlers ./handlers
COPY examples ./examples
# Extras to install, e.g. --build-arg EXTRAS="[otel]" for OpenTelemetry traces (GATEWAY_TRACING=otlp).
ARG EXTRAS=""
RUN /opt/venv/bin/pip install ".${EXTRAS}"

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
# The worker has no HTTP port: run it with `--no-healthcheck` or override this in compose.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
