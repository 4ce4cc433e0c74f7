# syntax=docker/dockerfile:1
# LIMEN quota-service image. Build from the repository root (the context must include libs/ and docs/):
#   docker build -f deployments/docker/quota-service.Dockerfile -t limen/quota-service .
# docker-compose.yml does this for you.

FROM golang:1.26-bookworm AS build
# Each service module builds on its own (go.mod: replace limen/libs => ../libs and limen/docs =>
# ../docs), not via go.work.
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src
# Module files first, so the dependency download is cached until they change.
COPY libs/go.mod libs/go.sum libs/
COPY docs/go.mod docs/
COPY quota-service/go.* quota-service/
RUN --mount=type=cache,target=/go/pkg/mod cd quota-service && go mod download
COPY libs/ libs/
COPY quota-service/ quota-service/
# /probe: a static HTTP health probe (distroless has no shell or curl). Standard library only.
COPY deployments/go.mod deployments/go.sum deployments/
COPY deployments/probe/ deployments/probe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/quota-service && go build -trimpath -ldflags="-s -w" -o /out/quota-service ./cmd/quota-service \
 && cd /src/deployments && go build -trimpath -ldflags="-s -w" -o /out/probe ./probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/quota-service /usr/local/bin/quota-service
COPY --from=build /out/probe /probe

# Stateless apart from Postgres (schema quota) and its consumer group on the broker.
ENV LISTEN_ADDR=0.0.0.0:18084
USER nonroot
EXPOSE 18084
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/probe", "http://127.0.0.1:18084/readyz"]
ENTRYPOINT ["/usr/local/bin/quota-service"]
