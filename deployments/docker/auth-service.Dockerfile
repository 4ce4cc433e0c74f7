# syntax=docker/dockerfile:1
# LIMEN auth-service image. Build from the repository root (the context must include libs/ and docs/):
#   docker build -f deployments/docker/auth-service.Dockerfile -t limen/auth-service .
# docker-compose.yml does this for you.

FROM golang:1.26-bookworm AS build
# Each service module builds on its own (go.mod: replace limen/libs => ../libs and limen/docs =>
# ../docs), not via go.work.
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src
# Module files first, so the dependency download is cached until they change.
COPY libs/go.mod libs/go.sum libs/
COPY docs/go.mod docs/
COPY auth-service/go.* auth-service/
RUN --mount=type=cache,target=/go/pkg/mod cd auth-service && go mod download
COPY libs/ libs/
COPY auth-service/ auth-service/
# /probe: a static HTTP health probe (distroless has no shell or curl). Standard library only.
COPY deployments/go.mod deployments/go.sum deployments/
COPY deployments/probe/ deployments/probe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/auth-service && go build -trimpath -ldflags="-s -w" -o /out/auth-service ./cmd/auth-service \
 && cd /src/deployments && go build -trimpath -ldflags="-s -w" -o /out/probe ./probe \
 && mkdir -p /out/data/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/auth-service /usr/local/bin/auth-service
COPY --from=build /out/probe /probe
# Writable state (signing keys): a named volume mounted here starts with this ownership.
COPY --from=build --chown=65532:65532 /out/data /var/lib/limen

ENV LISTEN_ADDR=0.0.0.0:18081 \
    LIMEN_DATA_DIR=/var/lib/limen \
    LIMEN_JWT_KEY_DIR=/var/lib/limen/keys
USER nonroot
EXPOSE 18081
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/probe", "http://127.0.0.1:18081/readyz"]
ENTRYPOINT ["/usr/local/bin/auth-service"]
