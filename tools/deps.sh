#!/bin/sh
# Installs with apt whatever Pando needs to build, run and test that is not
# there yet. Does nothing (and needs no root) when everything is installed.
# `sh tools/deps.sh bench` also installs what only `make bench` needs (PyTorch,
# for the baseline in tools/bench-train.sh).
set -eu
PKGS="build-essential pkg-config libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
libopenblas-dev libdnnl-dev liburing-dev libyaml-dev zlib1g-dev libmicrohttpd-dev libsqlite3-dev dataset-fashion-mnist
grpc-proto protobuf-compiler python3-grpcio python3-protobuf python3-numpy
python3-yaml python3-prometheus-client iperf3"
# libcrypto (PEM checks in common/src/net/security.c) and the openssl tool (test certificates).
PKGS="$PKGS libssl-dev openssl"
# clang and its runtime libraries (libFuzzer, ASan, UBSan): make fuzz, make fuzz-ci.
PKGS="$PKGS clang libclang-rt-14-dev"
# pandoctl plot (services/ctl/plot.c).
PKGS="$PKGS libcairo2-dev"
# headless Chromium: tests/integration/test_dashboard.sh loads the dashboard.
PKGS="$PKGS chromium"
# make check-format (in .ci/run).
PKGS="$PKGS clang-format"
# docker-compose (Python, no engine): tests/integration/test_compose_config.sh.
PKGS="$PKGS docker-compose"
# Prometheus and promtool (Debian's build, which has no Kubernetes discovery):
# tests/integration/test_monitoring.sh and deploy/prometheus.
PKGS="$PKGS prometheus"
# tools/torch-baseline.py: only for the benchmark.
[ "${1:-}" = bench ] && PKGS="$PKGS python3-torch"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
