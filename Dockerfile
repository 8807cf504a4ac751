# seqcast's image: the CLI, the API, the scheduler and (with the same packages) the MLflow server.
# Two stages: the build stage installs the pinned packages into a virtualenv; the runtime stage copies only
# that virtualenv onto a slim Python and runs as an unprivileged user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY models ./models
COPY pipelines ./pipelines
COPY service ./service
COPY seqcast ./seqcast
# tensorflow-cpu (no CUDA), exact versions from constraints.txt; ray for SEQCAST_RAY_ADDRESS, boto3 for S3
RUN /opt/venv/bin/pip install -c constraints.txt ".[ray,s3]"

FROM python:3.11-slim
RUN groupadd --gid 10001 seqcast && useradd --uid 10001 --gid seqcast --create-home seqcast \
    && mkdir /data && chown seqcast:seqcast /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SEQCAST_DATA_DIR=/data \
    TF_CPP_MIN_LOG_LEVEL=3
USER seqcast
WORKDIR /home/seqcast
EXPOSE 8000
CMD ["seqcast", "serve", "--host", "0.0.0.0", "--port", "8000"]
