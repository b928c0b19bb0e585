#!/usr/bin/env bash
# Installs what Kura and its tests need on a fresh machine: Debian's etcd-server (the MetaStore's
# cluster implementation is tested against a real etcd) and the npm dependencies, which bring in
# Node 24 for every `npm run` script.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  else
    echo "setup: etcd is missing; install Debian's etcd-server (sudo apt-get install etcd-server)" >&2
    exit 1
  fi
fi
# etcd-server's package starts a system etcd on the default ports; tests use their own ports.
npm ci --no-audit --no-fund
