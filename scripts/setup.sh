#!/usr/bin/env bash
# Installs what Kura and its tests need on a fresh machine: Debian's etcd-server (the MetaStore's
# cluster implementation is tested against a real etcd), Debian's azure-cli and rclone (the
# integration tests drive `kura serve` with them as real clients), iproute2 (the multi-host tests
# run roles in network namespaces; they need root), and the npm dependencies,
# which bring in Node 24 for every `npm run` script. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v az >/dev/null 2>&1 || missing+=(azure-cli)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
# Multi-host cluster tests put roles in network namespaces (`ip netns`, veth, bridge).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them from Debian (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
# etcd-server's package starts a system etcd on the default ports; tests use their own ports.
npm ci --no-audit --no-fund
