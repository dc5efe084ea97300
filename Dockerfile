# Production image: gunicorn serving the tool; run `lti-tool worker` from the same image for jobs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LTI_TOOL_ENV=production \
    LTI_TOOL_INSTANCE_PATH=/var/lib/lti-tool

WORKDIR /app
COPY pyproject.toml README.md ./
COPY lti_tool ./lti_tool
COPY migrations ./migrations
COPY config ./config
COPY templates ./templates
# Editable install: templates/, config/ and migrations/ are read from /app at run time.
RUN pip install --no-cache-dir -e . \
    && useradd --system --home /var/lib/lti-tool --create-home lti-tool
USER lti-tool
EXPOSE 8000

# Set LTI_TOOL_DATABASE_URL, LTI_TOOL_REDIS_URL, LTI_TOOL_BASE_URL and LTI_TOOL_SECRET_KEY.
# Migrate once per release: docker run --rm IMAGE lti-tool db upgrade
CMD ["lti-tool", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
