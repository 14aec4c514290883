# syntax=docker/dockerfile:1
# Build: docker build -t mediafire-dav .
# Run:   docker run -d -p 8080:8080 -v mfdav:/data \
#          -e MEDIAFIRE_COOKIE='...' -e MEDIAFIRE_DAV_USER=me -e MEDIAFIRE_DAV_PASS='...' \
#          mediafire-dav

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/mediafire-dav \
    && mkdir -p /out/data/state /out/data/spool

# distroless/cc: glibc and nothing else (no shell, no curl); runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mediafire-dav /usr/local/bin/mediafire-dav
# The volume's mount point must belong to the runtime user, and distroless has
# no shell to chown it at start-up.
COPY --from=build --chown=65532:65532 /out/data /data
# Configuration is by environment (see config.example.toml for every
# MEDIAFIRE_DAV_* name). `healthcheck` reads MEDIAFIRE_DAV_LISTEN too, so
# moving the port needs no second setting.
ENV MEDIAFIRE_DAV_LISTEN=0.0.0.0:8080 \
    MEDIAFIRE_DAV_STATE_DIR=/data/state \
    MEDIAFIRE_DAV_SPOOL_DIR=/data/spool
VOLUME ["/data"]
EXPOSE 8080
USER nonroot
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mediafire-dav", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mediafire-dav"]
CMD ["serve"]
