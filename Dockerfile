# syntax=docker/dockerfile:1
# The MCPaaS gateway image (issue 11, item 2): `python -m gateway` on port 8080.
#
# The base is pinned by digest so a rebuild never pulls a different OS under the same
# tag. Refresh it on purpose: `docker buildx imagetools inspect python:3.11-slim-bookworm`
# and replace both digests below (they are the same image).
#
# Stage 1 builds the project and its dependencies into a virtual environment with the
# compilers wheels may need; stage 2 carries only that venv, the runtime packages hosted
# servers need (Node.js and npm for `npx` servers, bubblewrap and util-linux's prlimit
# for the child sandbox, docs/sandbox.md) and an unprivileged user.

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/mcpaas
COPY requirements.txt ./
RUN /opt/mcpaas/bin/pip install --requirement requirements.txt
COPY pyproject.toml README.md function_app.py ./
COPY shared ./shared
COPY gateway ./gateway
COPY triggers ./triggers
COPY orchestrators ./orchestrators
COPY activities ./activities
COPY devhost ./devhost
COPY cli ./cli
COPY catalog ./catalog
RUN /opt/mcpaas/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
LABEL org.opencontainers.image.title="mcpaas-gateway" \
      org.opencontainers.image.description="MCPaaS gateway: serves MCP traffic for every hosted server"
# hadolint/checkov: versions are pinned by the base image's Debian release (bookworm); the
# digest above pins the whole package set until it is refreshed on purpose
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends nodejs npm bubblewrap util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mcpaas \
 && useradd --system --uid 10001 --gid mcpaas --home-dir /var/lib/mcpaas --create-home mcpaas
COPY --from=build /opt/mcpaas /opt/mcpaas
ENV PATH="/opt/mcpaas/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    MCPAAS_DATA_DIR=/var/lib/mcpaas \
    MCPAAS_GATEWAY_HOST=0.0.0.0 \
    MCPAAS_GATEWAY_PORT=8080
USER 10001:10001
WORKDIR /var/lib/mcpaas
EXPOSE 8080
# /readyz answers 200 once the store is reachable (a real dependency check, not a port probe)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "gateway"]
