# syntax=docker/dockerfile:1
#
# One image for the three Rust services (orders, payments, gateway) and the dev identity provider
# (devauth). docker-compose.yml picks the process with `command:`; `orders migrate` /
# `payments migrate` apply the embedded migrations, `devauth keys /auth` writes the signing keys.
#
# The RUN --mount cache mounts need BuildKit: the default for `docker compose` (v2) and
# `docker build` on current engines; with the legacy docker-compose 1.29 set
# DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder

# rdkafka's `cmake-build` compiles the bundled librdkafka: it needs cmake, and the bundled
# sources include curl/curl.h even with curl disabled, hence libcurl4-openssl-dev.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# SQLX_OFFLINE: sqlx macros never try to reach a database at compile time (they use .sqlx/ if the
# project has one).
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    SQLX_OFFLINE=true

# The whole (filtered, see .dockerignore) workspace: every member listed in Cargo.toml must be
# present for cargo to load the workspace, and migrations/ is read at *compile* time by
# sqlx::migrate!. Cargo's own caches below keep rebuilds incremental despite the broad COPY.
COPY . .

# target/ lives in a cache mount, so the binaries are copied out in the same RUN.
# sharing=locked: compose may start several builds of this image at once; they queue on the lock
# and the later ones find everything compiled.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins -p orders -p payments -p gateway -p devauth \
 && mkdir -p /out \
 && cp target/release/orders target/release/payments target/release/gateway target/release/devauth /out/

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates for any TLS endpoint configured later; curl for the compose healthchecks.
# (librdkafka and zlib are linked statically; the binaries need only glibc and libgcc_s.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin app

# The key directory of `devauth keys /auth`. A named volume mounted here starts as a copy of it,
# owner included, so the non-root app user can write the keys into it.
RUN mkdir -p /auth && chown app:app /auth && chmod 700 /auth

COPY --from=builder /out/ /usr/local/bin/

# Inside a container the services must listen on all interfaces.
ENV HTTP_HOST=0.0.0.0 \
    RUST_LOG=info

USER app:app
EXPOSE 8080 8081 8082 8084

# The binaries are PID 1 and handle SIGTERM themselves (graceful drain, then exit).
STOPSIGNAL SIGTERM
CMD ["gateway"]
