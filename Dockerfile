# The daemon's own image: `orchestrator daemon`, driving the engine through its mounted socket.
#
#   docker run -d --name orchestrator --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock -v orchestrator-state:/var/lib/orchestrator \
#     orchestrator/daemon
#
# --network host: the API listens on 127.0.0.1:7420 of the host, the ingress binds published
# ports on the host and reaches replicas on their stack networks, and Redis is found at
# 127.0.0.1:6379 (or set ORCHESTRATOR_REDIS_URL). It runs as root, as the engine's socket needs.
#
# Alone, the daemon starts its ingress (the published ports) as a child in the same container,
# so a restart of the container takes the ports down with it. Production runs the ingress as a
# container of its own, as systemd runs two units (deploy/systemd/), both `--restart
# unless-stopped`; then restarting or upgrading the daemon's container keeps the ports answering:
#
#   docker run -d --name orchestrator-ingress --restart unless-stopped --network host \
#     --no-healthcheck -v orchestrator-state:/var/lib/orchestrator orchestrator/daemon ingress
#   docker run -d --name orchestrator --restart unless-stopped --network host \
#     -e ORCHESTRATOR_INGRESS=external -v /var/run/docker.sock:/var/run/docker.sock \
#     -v orchestrator-state:/var/lib/orchestrator orchestrator/daemon
#
# With a registry: `docker build -t orchestrator/daemon .` (public Python base, pip installs the
# package and its dependencies from PyPI). Without one (these machines): build_daemon_image in
# scripts/lib.sh puts wheels built on the host into images/daemon/wheels (PyPI does not answer
# inside containers here) and passes --build-arg BASE_IMAGE=orchestrator/python-base:bookworm.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

COPY images/daemon/wheels/ /tmp/wheels/
COPY pyproject.toml README.md /tmp/src/
COPY orchestrator/ /tmp/src/orchestrator/
# The wheelhouse brings pip itself as a wheel (a minimal Debian has no pip): pip runs from it.
RUN if ls /tmp/wheels/*.whl >/dev/null 2>&1; then \
      set -- /tmp/wheels/pip-*.whl \
      && python3 -m venv --without-pip /opt/orchestrator \
      && /opt/orchestrator/bin/python "$1/pip" install --no-cache-dir --no-index \
           --no-warn-script-location --find-links /tmp/wheels orchestrator; \
    else \
      python3 -m venv /opt/orchestrator && /opt/orchestrator/bin/pip install --no-cache-dir /tmp/src; \
    fi \
 && rm -rf /tmp/wheels /tmp/src

ENV PATH=/opt/orchestrator/bin:$PATH \
    ORCHESTRATOR_LOG_FORMAT=json \
    ORCHESTRATOR_STATE_DIR=/var/lib/orchestrator
VOLUME /var/lib/orchestrator
# The API answers once the daemon is up; the CLI finds it from the same ORCHESTRATOR_* settings.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["orchestrator", "ls"]
ENTRYPOINT ["orchestrator"]
CMD ["daemon"]
