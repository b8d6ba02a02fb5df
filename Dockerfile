# kestrel in a container:
#   docker build --build-arg KESTREL_GIT_REV=$(git rev-parse --short=12 HEAD) -t kestrel .
#   docker run --rm -it kestrel                       # paper trading, no configuration
#   docker run --rm --network host \
#     -v /etc/kestrel:/etc/kestrel:ro -v kestrel-data:/var/lib/kestrel \
#     -e KESTREL_HEALTH_CONFIG=/etc/kestrel/kestrel.toml \
#     kestrel run --config /etc/kestrel/kestrel.toml  # live
# For latency, run on the host network and pin with --cpuset-cpus; see docs/DEPLOY.md.

# Dependencies are compiled in a layer of their own (cargo-chef): a change to kestrel's
# source rebuilds kestrel, not the ~300 crates under it.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p kestrel --recipe-path recipe.json
COPY . .
# `kestrel --version` names this revision (the build context has no .git: "unknown" without it).
ARG KESTREL_GIT_REV=unknown
ENV KESTREL_GIT_REV=${KESTREL_GIT_REV}
RUN cargo build --release --locked -p kestrel \
    && install -m 0755 target/release/kestrel /usr/local/bin/kestrel

FROM debian:bookworm-slim
ARG KESTREL_GIT_REV=unknown
LABEL org.opencontainers.image.title="kestrel" \
      org.opencontainers.image.description="A low-latency trading engine for NSE through Kite Connect" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/kestrel" \
      org.opencontainers.image.documentation="https://example.invalid/kestrel/docs/DEPLOY.md" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${KESTREL_GIT_REV}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/kestrel --create-home kestrel
COPY --from=build /usr/local/bin/kestrel /usr/local/bin/kestrel
COPY config/kestrel.toml /usr/share/kestrel/kestrel.toml
USER kestrel
WORKDIR /var/lib/kestrel
VOLUME ["/var/lib/kestrel"]
# The metrics endpoint listens on 127.0.0.1 inside the container; publish it deliberately.
# Healthy = the session answers on its control socket (`kestrel ctl status`), found through
# the configuration in KESTREL_HEALTH_CONFIG (the built-in one, as `paper` uses, when unset).
ENV KESTREL_HEALTH_CONFIG=""
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/bin/sh", "-c", "exec /usr/local/bin/kestrel ctl status --timeout 3s ${KESTREL_HEALTH_CONFIG:+--config \"$KESTREL_HEALTH_CONFIG\"} >/dev/null"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kestrel"]
CMD ["paper"]
