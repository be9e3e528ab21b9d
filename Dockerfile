# Relayr in a container.
#
# Stage 1 installs Bun from the npm registry and compiles the single
# executable (scripts/build.sh: bun build --compile). Stage 2 is a slim Debian
# with that one file, run as an unprivileged user. The binary needs only
# glibc (ldd: libc, libm, libpthread, libdl), so distroless/cc would do too;
# bookworm-slim keeps a shell for `docker exec` debugging.
#
#   docker build -t relayr .
#   docker run -p 9092:9092 -p 8222:8222 -p 9093:9093 -v relayr-data:/data relayr
#
# Settings come from RELAYR_* environment variables or flags after the image
# name (docker run relayr serve --max-payload 4194304); see docs/OPERATIONS.md.

ARG BUN_VERSION=1.4.4
# The base images, and where the binary comes from: `build` compiles it in the
# image; `prebuilt` takes dist/relayr from the build context (scripts/build.sh
# run on the host), for builders that cannot pull node:22 (tests/container_test.ts).
ARG BUILD_BASE=node:22-bookworm-slim
ARG RUN_BASE=debian:bookworm-slim
ARG BINARY=build

FROM ${BUILD_BASE} AS build
ARG BUN_VERSION
# The bun npm package brings the Linux binary through an optional dependency.
RUN npm install --global "bun@${BUN_VERSION}" && bun --version
WORKDIR /src
COPY package.json ./
RUN bun install --no-save --production
COPY main.ts ./
COPY src ./src
COPY scripts/build.sh ./scripts/build.sh
RUN bash scripts/build.sh /out/relayr

FROM scratch AS prebuilt
COPY dist/relayr /out/relayr

FROM ${BINARY} AS binary

FROM ${RUN_BASE}
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home relayr \
    && mkdir /data && chown relayr:relayr /data
COPY --from=binary /out/relayr /usr/local/bin/relayr
USER relayr:relayr
WORKDIR /data
# Listen on every interface inside the container; logs as JSON lines for log
# shippers. RELAYR_DATA_DIR is where the durable log store keeps its files
# (a build without that setting ignores the variable).
ENV RELAYR_HOST=0.0.0.0 \
    RELAYR_LOG_FORMAT=json \
    RELAYR_DATA_DIR=/data
EXPOSE 9092 9093 8222
VOLUME ["/data"]
# The image has no curl or wget: relayr itself asks its monitoring port
# (GET /api/stats; exit 0 on 200, non-zero when unreachable or failing).
# If you change RELAYR_HTTP_PORT, change the port here too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/relayr", "stats", "--compact", "--timeout", "3000", "--http", "127.0.0.1:8222"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/relayr"]
CMD ["serve"]
