# The streambed worker/simulator image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY features features
COPY streams streams
COPY monitors monitors
COPY examples examples
RUN pip install --no-cache-dir .
