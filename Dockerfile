# One image for every role: `scheduler-service web|worker|run|...` picks it at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SCHEDULER_ENV=production \
    HOST=0.0.0.0 \
    PORT=9266

WORKDIR /app
RUN useradd --system --uid 10001 --home /app scheduler

COPY setup.cfg setup.py README.rst ./
COPY scheduler_service ./scheduler_service
COPY plugins ./plugins
RUN pip install . && \
    for p in plugins/*/; do [ -f "$p/setup.cfg" ] && pip install "$p"; done; true

USER scheduler
EXPOSE 9266
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT','9266'), timeout=4)" || exit 1
ENTRYPOINT ["scheduler-service"]
CMD ["web"]
