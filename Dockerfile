# syntax=docker/dockerfile:1
# One image for every Redress service; the command picks the service (see docs/deploy.md):
#   docker run redress redress_intake | redress_routing | redress_recovery | redress_reporting
#   docker run redress redress_kafka.admin        (one-shot: create the topics)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: wheels into a venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only here, for any dependency without a wheel for this platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/redress
ENV PATH=/opt/redress/bin:$PATH
WORKDIR /src
# Dependencies first (pyproject only), so a code change does not re-resolve them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY shared/ shared/
COPY services/ services/
RUN pip install --no-deps . \
    && python -m compileall -q /opt/redress/lib \
    && python -c "import redress_intake, redress_routing, redress_reporting, redress_recovery, redress_config"

# ---------------------------------------------------------------- run: no compilers, no root
FROM ${PYTHON_IMAGE} AS run
ARG UID=10001
ENV PATH=/opt/redress/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REDRESS_INTAKE_HOST=0.0.0.0 \
    REDRESS_ROUTING_HOST=0.0.0.0 \
    REDRESS_RECOVERY_HOST=0.0.0.0 \
    REDRESS_REPORTING_HOST=0.0.0.0 \
    REDRESS_ROUTING_DATA_DIR=/var/lib/redress/routing \
    REDRESS_RECOVERY_DATA_DIR=/var/lib/redress/recovery \
    REDRESS_REPORTING_DATA_DIR=/var/lib/redress/reporting
RUN groupadd --system --gid ${UID} redress \
    && useradd --system --uid ${UID} --gid ${UID} --home-dir /var/lib/redress \
       --shell /usr/sbin/nologin redress \
    && install -d -o ${UID} -g ${UID} -m 0750 /var/lib/redress \
       /var/lib/redress/routing /var/lib/redress/recovery /var/lib/redress/reporting
COPY --from=build /opt/redress /opt/redress
USER ${UID}:${UID}
WORKDIR /var/lib/redress
# Each service handles SIGTERM itself (uvicorn, faust worker): it runs as PID 1 directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m"]
CMD ["redress_intake"]
