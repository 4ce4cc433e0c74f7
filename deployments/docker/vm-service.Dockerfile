# syntax=docker/dockerfile:1
# LIMEN vm-service image. Build from the repository root (the context must include libs/ and docs/):
#   docker build -f deployments/docker/vm-service.Dockerfile -t limen/vm-service .
# docker-compose.yml does this for you.

FROM golang:1.26-bookworm AS build
# Each service module builds on its own (go.mod: replace limen/libs => ../libs and limen/docs =>
# ../docs), not via go.work.
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src
# Module files first, so the dependency download is cached until they change.
COPY libs/go.mod libs/go.sum libs/
COPY docs/go.mod docs/
COPY vm-service/go.* vm-service/
RUN --mount=type=cache,target=/go/pkg/mod cd vm-service && go mod download
COPY libs/ libs/
COPY vm-service/ vm-service/
# /probe: a static HTTP health probe (distroless has no shell or curl). Standard library only.
COPY deployments/go.mod deployments/go.sum deployments/
COPY deployments/probe/ deployments/probe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/vm-service && go build -trimpath -ldflags="-s -w" -o /out/vm-service ./cmd/vm-service \
 && cd /src/deployments && go build -trimpath -ldflags="-s -w" -o /out/probe ./probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vm-service /usr/local/bin/vm-service
COPY --from=build /out/probe /probe

# Stateless apart from Postgres: VM disks live in a libvirt storage pool on the host, reached through
# the host's libvirt socket (mounted by docker-compose.yml). The socket's group must admit this user
# (compose adds the socket's group id; see LIBVIRT_GID there).
ENV LISTEN_ADDR=0.0.0.0:18082 \
    LIBVIRT_URI=qemu:///system \
    LIBVIRT_SOCKET=/var/run/libvirt/libvirt-sock
USER nonroot
EXPOSE 18082
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/probe", "http://127.0.0.1:18082/readyz"]
ENTRYPOINT ["/usr/local/bin/vm-service"]
