#!/usr/bin/env bash
# Installs what building and testing stowage needs on Debian 12, and only
# what is missing: the Debian packages, then TensorFlow.js for the interop
# tests (npm ci from the committed lock file). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make ccache pkg-config
          libboost1.81-dev rapidjson-dev doctest-dev libcli11-dev libssl-dev
          python3 chromium libsqlite3-dev openssl curl time)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: Node.js 20 and npm are needed for the TensorFlow.js interop tests" >&2
  exit 1
fi
# npm ci when any dependency in tests/interop/package.json is missing or at
# another version than the lock file pins.
if ! node -e '
  const dir = "./tests/interop/";
  const lock = require(dir + "package-lock.json").packages;
  for (const name of Object.keys(require(dir + "package.json").dependencies)) {
    const want = lock["node_modules/" + name].version;
    const have = require(dir + "node_modules/" + name + "/package.json").version;
    if (want !== have) process.exit(1);
  }' 2>/dev/null; then
  echo "setup: npm ci in tests/interop"
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
