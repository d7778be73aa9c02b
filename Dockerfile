# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Build the dependencies alone first, against placeholder sources, so that the layer holding
# them is reused until Cargo.toml or Cargo.lock changes. scripts/cargo_placeholders makes one for
# every target the manifest names (benches included), so a new target needs no change here.
COPY Cargo.toml Cargo.lock ./
COPY scripts/cargo_placeholders scripts/
RUN scripts/cargo_placeholders \
    && cargo build --release --locked \
    && rm -rf src benches tests examples

# Now the real sources: src/, migrations/ (embedded by sqlx::migrate! at compile time),
# build.rs and openapi.yaml (served by the binary). .dockerignore keeps target/ and the rest
# out. Touch the crate roots so cargo rebuilds the crate rather than trusting the
# placeholder's timestamps. Queries are checked at run time, so no database is needed here.
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/dendrite /usr/local/bin/dendrite

# ---- run --------------------------------------------------------------------
FROM debian:bookworm-slim

# curl is only for the HEALTHCHECK; ca-certificates for any outbound TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dendrite \
    && useradd --system --uid 10001 --gid dendrite --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin dendrite \
    && mkdir /data \
    && chown dendrite:dendrite /data

COPY --from=builder /usr/local/bin/dendrite /usr/local/bin/dendrite

ENV DENDRITE_LISTEN=0.0.0.0:8080 \
    DENDRITE_DATABASE_URL=sqlite:///data/dendrite.db \
    DENDRITE_LOG_FORMAT=json

VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--output", "/dev/null", "http://127.0.0.1:8080/healthz"]

ENTRYPOINT ["/usr/local/bin/dendrite"]
CMD ["serve"]
