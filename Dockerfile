# One image for every role: `scheduler-service web|worker|cron|subscriber|run|...` picks it
# at run time (docker-compose.yml runs each role as a service of its own).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SCHEDULER_ENV=production \
    HOST=0.0.0.0 \
    PORT=9266 \
    DATA_DIR=/data

WORKDIR /app
RUN useradd --system --uid 10001 --home /app scheduler && \
    mkdir -p /data && chown scheduler:scheduler /data

COPY setup.cfg setup.py README.rst ./
COPY scheduler_service ./scheduler_service
COPY plugins ./plugins
RUN pip install . && \
    for p in plugins/*/; do [ -f "$p/setup.cfg" ] && pip install "$p"; done; true

USER scheduler
EXPOSE 9266
# The web role's check; compose gives every other role its own (`healthcheck --role ROLE`).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["scheduler-service", "healthcheck", "--role", "web"]
ENTRYPOINT ["scheduler-service"]
CMD ["web"]
