# Aperture from this repository: slim, non-root, with a health check.
#   docker build -t aperture .                       # the core, with Bedrock and PII
#   docker build --build-arg EXTRAS=ocr,otel -t aperture .   # OCR (adds tesseract) and traces
# Versions come from requirements.lock (scripts/lock regenerates it); Bedrock (bedrock) and
# the PII phone detector (pii) are always in the image.
# The config is read from /etc/aperture/aperture.yaml (mount it); secrets come from the
# environment through ${VAR} references in that file.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN python -m venv /opt/aperture \
 && /opt/aperture/bin/pip install --no-cache-dir --disable-pip-version-check \
      -r requirements.lock \
 && /opt/aperture/bin/pip install --no-cache-dir --disable-pip-version-check \
      ".[bedrock,pii${EXTRAS:+,$EXTRAS}]"

FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=""
# tesseract only when the ocr extra is asked for: it is most of the image's size otherwise.
RUN case ",${EXTRAS}," in *,ocr,*) \
      apt-get update \
      && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
      && rm -rf /var/lib/apt/lists/* ;; \
    esac \
 && useradd --system --uid 10001 --home-dir /var/lib/aperture --create-home aperture
COPY --from=build /opt/aperture /opt/aperture
ENV PATH=/opt/aperture/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    APERTURE_CONFIG=/etc/aperture/aperture.yaml
USER aperture
WORKDIR /var/lib/aperture
EXPOSE 8080 8090
# /healthz answers while the process lives; /readyz is for the load balancer (false while draining).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# SIGTERM drains (server.drain_timeout_s); give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aperture"]
CMD ["serve", "--host", "0.0.0.0"]
