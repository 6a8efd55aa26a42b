#!/usr/bin/env bash
# Installs what building and testing stowage needs on Debian 12, and only
# what is missing: the Debian packages, then TensorFlow.js for the interop
# tests (npm ci from the committed lock file). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make ninja-build ccache pkg-config
          libboost1.81-dev rapidjson-dev doctest-dev libcli11-dev libssl-dev
          python3 python3-pip chromium libsqlite3-dev openssl curl time
          clang libclang-rt-14-dev   # clang and libFuzzer: the fuzz preset
          python3-numpy              # tests/quantize_reference.py (the converter's quantization)
          python3-prometheus-client) # the serve test's /metrics parser (for /usr/bin/python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js (18 or newer) and npm for the TensorFlow.js interop tests and the
# Node binding: Debian 12's own (Node 18) unless a node and npm are already
# on PATH (another Node, e.g. NodeSource's, which bundles npm).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  echo "setup: Node.js 18 or newer is needed (the interop tests and the Node binding);" \
    "$(command -v node) is $(node --version)" >&2
  exit 1
fi
# npm ci in DIR when any dependency of DIR/package.json is missing or at
# another version than the lock file pins.
npm_ci_if_needed() {
  local dir=$1
  shift
  if ! node -e '
    const dir = "./" + process.argv[1] + "/";
    const lock = require(dir + "package-lock.json").packages;
    const pkg = require(dir + "package.json");
    for (const name of Object.keys({...pkg.dependencies, ...pkg.devDependencies})) {
      const want = lock["node_modules/" + name].version;
      const have = require(dir + "node_modules/" + name + "/package.json").version;
      if (want !== have) process.exit(1);
    }' "$dir" 2>/dev/null; then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error "$@")
  fi
}
npm_ci_if_needed tests/interop
# The Node.js binding: Node-API headers and TypeScript. Its install script
# is for `npm install` of the packed package; here the CMake build makes the
# addon, hence --ignore-scripts.
npm_ci_if_needed bindings/node --ignore-scripts

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
