# quizbench container image: a multi-stage build.
#   builder  rust:1-bookworm   builds the `quizbench` server and the `quizload` load generator
#   runtime  debian:bookworm-slim, non-root user, both binaries, config/, static/ and
#            loadtests/experiments/ under /app (the working directory)
#
#   docker build -t quizbench .
#   docker run --rm -p 127.0.0.1:8000:8000 -e DATABASE_URL=... -e REDIS_URL=... quizbench
# (docker-compose.yml runs it with PostgreSQL and Redis: `docker compose up --build`;
# deploy/compose.scale.yml runs N replicas behind HAProxy with PgBouncer.)
# Published on all interfaces (-p 8000:8000) the server warns at start-up while the
# seeded accounts exist: set PUBLISH_IP to the address the port is published on.

FROM rust:1-bookworm AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    SQLX_OFFLINE=true

# 1. Dependencies: build the workspace with placeholder sources, so this layer is
#    reused until Cargo.toml, loadtests/Cargo.toml or Cargo.lock change. (Only a
#    cache: if the placeholders do not satisfy the manifests, step 2 builds all.)
COPY Cargo.toml Cargo.lock ./
COPY loadtests/Cargo.toml loadtests/Cargo.toml
RUN mkdir -p src loadtests/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs loadtests/src/lib.rs \
    && echo 'fn main() {}' > loadtests/src/main.rs \
    && (cargo build --release --locked -p quizbench -p loadtests \
        || echo "dependency pre-build failed; the full build below builds everything") \
    && rm -rf src loadtests/src

# 2. The real sources (see .dockerignore). Touch them: their mtimes may predate
#    the placeholder build, and cargo would then keep the placeholder binaries.
COPY . .
RUN find src loadtests/src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p quizbench -p loadtests \
    && mkdir -p /out config static loadtests/experiments \
    && for bin in quizbench quizload; do \
         objcopy --compress-debug-sections=zlib "target/release/$bin" "/out/$bin"; \
       done

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin quizbench \
    && mkdir -p /app /data/files \
    && chown -R quizbench:quizbench /data
WORKDIR /app
COPY --from=builder /out/quizbench /out/quizload /usr/local/bin/
COPY --from=builder /src/config/ /app/config/
COPY --from=builder /src/static/ /app/static/
COPY --from=builder /src/loadtests/experiments/ /app/loadtests/experiments/
ENV BIND=0.0.0.0:8000 \
    FILES_DIR=/data/files
USER quizbench
EXPOSE 8000
# No curl in the slim image: bash's /dev/tcp sends the request.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${BIND##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 4 line <&3 && [[ $line == *' 200 '* ]]"]
STOPSIGNAL SIGTERM
CMD ["quizbench", "serve"]
