# The wsbench image: one `wsbench` binary (server, loadgen, collect, report, ...) on a slim base.
#
#   docker build -t wsbench:dev .
#   docker run --rm wsbench:dev --version
#
# Kubernetes runs it as the load-generator shards of `wsbench k8s render` (docs/k8s.md).

# Build stage: the toolchain and the whole workspace; only the binary leaves it. 1.95 is the
# toolchain the project is built and tested with (hdrhistogram 7.6 alone needs 1.88).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the image holds exactly the dependencies of Cargo.lock. The cache mounts keep the
# registry and target folder between builds (BuildKit); the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wsbench --bin wsbench \
    && install -D -m 0755 target/release/wsbench /out/wsbench

# Run stage: glibc (the binary links it dynamically) and tar, which `kubectl cp` needs to copy
# results out of a pod; nothing else.
FROM debian:bookworm-slim
COPY --from=build /out/wsbench /usr/local/bin/wsbench
# Not root: the rendered pods set fsGroup 65532 so this user can write the results volume.
USER 65532:65532
WORKDIR /results
ENTRYPOINT ["wsbench"]
CMD ["--help"]
