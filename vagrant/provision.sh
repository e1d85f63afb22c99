#!/bin/sh
# Install Rust (rustup, stable) for root; nothing else: scripts/run.sh and scripts/test.sh
# install what Cairn needs.
set -eu
apt-get update -qq
apt-get install -y -qq curl ca-certificates build-essential
if ! command -v cargo >/dev/null 2>&1; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile default
fi
