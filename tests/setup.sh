#!/usr/bin/env bash
# Installs what building and testing stowage needs on Debian 12, and only
# what is missing: the Debian packages, then TensorFlow.js for the interop
# tests (npm ci from the committed lock file). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make ccache pkg-config
          libboost1.81-dev rapidjson-dev doctest-dev libcli11-dev libssl-dev
          python3 chromium libsqlite3-dev openssl curl time
          clang libclang-rt-14-dev   # clang and libFuzzer: the fuzz preset
          python3-numpy)             # tests/quantize_reference.py (the converter's quantization)
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

# The s3:// tests run moto_server (a real S3 server) and cross-check with the
# aws CLI, both from the Python on PATH; pip installs them when missing.
if ! python3 -c 'import moto.server, boto3' 2>/dev/null || ! command -v aws >/dev/null; then
  echo "setup: pip install moto[server] 5.2.1 and the aws CLI for the s3:// tests"
  python3 -m pip install --quiet --user 'moto[server]==5.2.1' 'awscli>=1.36' boto3 ||
    python3 -m pip install --quiet --user --break-system-packages 'moto[server]==5.2.1' \
      'awscli>=1.36' boto3
fi

# The http:// tests run the Flask upload receiver of the TF.js docs.
if ! python3 -c 'import flask' 2>/dev/null; then
  echo "setup: pip install flask for the http:// tests"
  python3 -m pip install --quiet --user 'flask>=2.2' ||
    python3 -m pip install --quiet --user --break-system-packages 'flask>=2.2'
fi
