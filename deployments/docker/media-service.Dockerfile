# syntax=docker/dockerfile:1
# LIMEN media-service image. Build from the repository root (the context must include libs/ and docs/):
#   docker build -f deployments/docker/media-service.Dockerfile -t limen/media-service .
# docker-compose.yml does this for you.

FROM golang:1.26-bookworm AS build
# Each service module builds on its own (go.mod: replace limen/libs => ../libs and limen/docs =>
# ../docs), not via go.work.
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src
# Module files first, so the dependency download is cached until they change.
COPY libs/go.mod libs/go.sum libs/
COPY docs/go.mod docs/
COPY media-service/go.* media-service/
RUN --mount=type=cache,target=/go/pkg/mod cd media-service && go mod download
COPY libs/ libs/
COPY media-service/ media-service/
# /probe: a static HTTP health probe (distroless has no shell or curl). Standard library only.
COPY deployments/go.mod deployments/go.sum deployments/
COPY deployments/probe/ deployments/probe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/media-service && go build -trimpath -ldflags="-s -w" -o /out/media-service ./cmd/media-service \
 && cd /src/deployments && go build -trimpath -ldflags="-s -w" -o /out/probe ./probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/media-service /usr/local/bin/media-service
COPY --from=build /out/probe /probe

# Stateless apart from Postgres: the ISO library is a libvirt storage pool on the host, reached through
# the host's libvirt socket (mounted by docker-compose.yml, with the library directory read-only at the
# same path so symlinks can be checked). The socket's group must admit this user (LIBVIRT_GID there).
ENV LISTEN_ADDR=0.0.0.0:18083 \
    LIBVIRT_URI=qemu:///system \
    LIBVIRT_SOCKET=/var/run/libvirt/libvirt-sock
USER nonroot
EXPOSE 18083
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/probe", "http://127.0.0.1:18083/readyz"]
ENTRYPOINT ["/usr/local/bin/media-service"]
