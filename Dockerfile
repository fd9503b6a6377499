# syntax=docker/dockerfile:1
#
# The s3-asset-manager image: the Concourse resource type (/opt/resource/check, in, out) and
# the standalone `check`, `upload` and `prune` task entrypoints on PATH.
#
# Checked without Docker: scripts/lint-dockerfile runs hadolint on this file, and
# scripts/image-layout stages the runtime stage's layout from a local cargo build by reading
# its COPY lines and its link-making RUN lines. Keep every file of the layout in a line of a
# form that script reads:
#   COPY --from=builder /out/NAME... DEST/   (NAME: a binary the builder copied to /out)
#   COPY PATH... DEST/                       (PATH: relative to the repository)
#   RUN mkdir -p DIR && ln -s TARGET LINK ...  (only mkdir -p and ln -s, joined by &&)

# Bookworm on both sides: the binaries link against this glibc.
FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build reads, so edits elsewhere (docs, tests, pipelines) reuse the cache.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The patched aws-smithy-http-client that Cargo.toml's [patch.crates-io] names.
COPY vendor ./vendor
# --locked: exactly the dependency versions CI tested. The cache mounts keep the registry and
# the target directory between builds, so the binaries are copied out of the mount to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin s3-asset-manager \
    && mkdir -p /out \
    && cp target/release/s3-asset-manager /out/

FROM debian:bookworm-slim
# ca-certificates: the AWS SDK's TLS trusts the system store. No git: libgit2 is built in.
# Not pinned (DL3008): the CA list should be the current one, and a pinned Debian package
# version stops building as soon as the archive moves on to the next one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/s3-asset-manager /usr/local/bin/
COPY assets/check assets/upload assets/prune /usr/local/bin/
# One multi-call binary: invoked as check, in or out, it is the Concourse resource.
RUN mkdir -p /opt/resource \
    && ln -s /usr/local/bin/s3-asset-manager /opt/resource/check \
    && ln -s /usr/local/bin/s3-asset-manager /opt/resource/in \
    && ln -s /usr/local/bin/s3-asset-manager /opt/resource/out
ENV GIT_REPO_PATH=./repo PACKAGE_DIRECTORY=./packages
