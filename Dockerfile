# The rfm command in a container: `docker run --init rfm-segments worker`, `... train --input ...`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The package only (see .dockerignore): tests, data and local state stay out of the image.
COPY pyproject.toml README.md constraints.txt ./
COPY stream_app ./stream_app
COPY model_training ./model_training
# The library versions of constraints.txt (`make constraints`): a rebuilt image runs the same,
# and the model artifacts, which record them, load.
RUN pip install -c constraints.txt . && rm -rf /src

# A non-root user. /models is created and owned here so that a named volume mounted on it
# starts with this owner (Docker copies the mount point's ownership into a new volume).
RUN useradd --create-home --uid 10001 rfm \
    && mkdir -p /models /data \
    && chown rfm:rfm /models
USER rfm
# faust writes its data directory into the working directory: make it the user's home.
WORKDIR /home/rfm
ENV RFM_MODEL_DIR=/models/current

ENTRYPOINT ["rfm"]
CMD ["--help"]
