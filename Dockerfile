# kestrel in a container: `docker build -t kestrel .` then
#   docker run --rm -it kestrel                       # paper trading, no configuration
#   docker run --rm --network host \
#     -v /etc/kestrel:/etc/kestrel:ro -v kestrel-data:/var/lib/kestrel \
#     kestrel run --config /etc/kestrel/kestrel.toml  # live
# For latency, run on the host network and pin with --cpuset-cpus; see docs/DEPLOY.md.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kestrel \
    && install -m 0755 target/release/kestrel /usr/local/bin/kestrel

FROM debian:bookworm-slim
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
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kestrel"]
CMD ["paper"]
