# One image for every Pressroom service; docker-compose.yml picks the role with its command
# (`pressroom ingest`, `pressroom worker render`, `pressroom scheduler`, ...).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRESSROOM_STATE_DIR=/var/lib/pressroom

WORKDIR /app

# Only what the package build needs: no tests, benchmarks, virtualenvs or local state reach the image.
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
COPY pressroom ./pressroom

# The runtime dependencies only (no [test] extra), pinned by the same constraints as CI.
RUN pip install -c constraints.txt . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/pressroom --shell /usr/sbin/nologin pressroom \
 && mkdir -p /var/lib/pressroom \
 && chown pressroom:pressroom /var/lib/pressroom

USER pressroom
WORKDIR /var/lib/pressroom

EXPOSE 8000

CMD ["pressroom", "ingest"]
