# syntax=docker/dockerfile:1
#
# The broker as a small static image: one binary, no shell, run as a non-root
# user. `docker build -t broker .` (optionally --build-arg VERSION=v1.2.3);
# compose.yaml builds it for `docker compose up`. docs/deploy.md has the rest.
# e2e/container_test.go builds the binary with this file's `go build` line and
# checks the result is static, stripped and answers its health check.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# CGO off: the SQLite driver is pure Go, so the binary needs no libc and runs
# on an image without one.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/broker ./cmd/broker

# distroless/static: CA certificates (Neon, Cloudinary and Uploadcare are
# reached over TLS), tzdata and /etc/passwd with the nonroot user; nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/broker /usr/local/bin/broker
# nonroot, by number so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The working directory is where `.env` is read from and where `broker dev`
# keeps .broker/; nonroot owns it.
WORKDIR /home/nonroot
ENV ADDR=:3000
EXPOSE 3000
# No curl in the image: the binary asks GET /healthz on the port ADDR names.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/broker", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/broker"]
CMD ["serve"]
