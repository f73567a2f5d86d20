# One image for every Pando role: the command picks the daemon
# (pando-coordinator, pando-ps, pando-worker) or the client (pandoctl).
#   docker build -t pando:latest .
# The build stage runs the developers' `make` for the four binaries; the
# runtime stage has only the shared libraries they load, the binaries, the
# example jobs (examples/) and Fashion-MNIST, and runs as the unprivileged
# user pando (uid 10001). See docs/deploy.md.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libgrpc-dev libprotobuf-c-dev protobuf-c-compiler \
      libopenblas-dev libdnnl-dev liburing-dev libyaml-dev zlib1g-dev libmicrohttpd-dev libsqlite3-dev libcairo2-dev grpc-proto \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole tree but build folders and .git (.dockerignore).
COPY . .
# The runtime packages are those of the shared libraries the binaries load
# (ldd, dpkg -S), so a new library needs no edit here. Today: libgrpc29,
# libprotobuf-c1, libopenblas0-pthread, libdnnl2, libgomp1, libyaml-0-2,
# libmicrohttpd12, zlib1g, libsqlite3-0 and what they depend on.
RUN set -e; \
    make -j"$(nproc)" build/bin/pando-ps build/bin/pando-worker \
      build/bin/pando-coordinator build/bin/pandoctl; \
    mkdir /out; \
    cp build/bin/pando-ps build/bin/pando-worker build/bin/pando-coordinator build/bin/pandoctl /out/; \
    for lib in $(ldd /out/* | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u); do \
      real=$(realpath "$lib"); \
      pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) \
        || { echo "no Debian package has $lib" >&2; exit 1; }; \
      echo "${pkg%%:*}"; \
    done >/tmp/packages; \
    sort -u /tmp/packages >/out/runtime-packages; \
    echo "runtime packages:" $(cat /out/runtime-packages)

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages) dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --gid 10001 pando \
 && useradd --uid 10001 --gid pando --home-dir /var/lib/pando --no-create-home \
      --shell /usr/sbin/nologin pando \
 && install -d -o pando -g pando -m 0750 /var/lib/pando
COPY --from=build /out/pando-coordinator /out/pando-ps /out/pando-worker /out/pandoctl /usr/local/bin/
COPY examples/ /opt/pando/examples/
WORKDIR /opt/pando
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# gRPC: coordinator 7070, parameter server 7000, worker health 7100 (the
# worker's own default is a free port: set PANDO_LISTEN=0.0.0.0:7100);
# Prometheus /metrics: 9070, 9000, 9100.
EXPOSE 7000 7070 7100 9000 9070 9100
CMD ["pandoctl", "--help"]
