#!/usr/bin/env bash
# Runs every benchmark in bench/ and writes their whole output, dated, into
# bench/README.md between the "all.sh results" markers, so every figure
# there comes from a script.
#
#   bench/all.sh [BUILD_DIR]          BUILD_DIR defaults to ./build
#   env: BENCHES (which to run, in order; default every one:
#          file http s3 stream digest integrity s3ca cache browser node serve),
#        REPS (passed on to every bench; each has its own default),
#        README (the file to write; default bench/README.md)
#
# The benches need what each needs (curl, node and tests/interop's npm ci,
# moto_server and the aws CLI, nginx and wrk); a bench that fails stops the run with its
# exit code, and the README keeps its previous results block.
set -euo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
readme=${README:-$here/README.md}
benches=${BENCHES:-file http s3 stream digest integrity s3ca cache browser node serve}
begin='<!-- all.sh results begin -->'
end='<!-- all.sh results end -->'
grep -qxF "$begin" "$readme" && grep -qxF "$end" "$readme" ||
  { echo "all.sh: $readme has no \"$begin\" / \"$end\" markers" >&2; exit 2; }

run_bench() {
  case $1 in
    file) "$here/run.sh" "$build" ;;
    http) "$here/http_load_bench.sh" "$build" ;;
    s3) python3 "$here/s3_bench.py" "$build" ;;
    stream) python3 "$here/stream_copy_bench.py" "$build" ;;
    digest) python3 "$here/digest_load_bench.py" "$build" ;;
    integrity) python3 "$here/integrity_save_bench.py" "$build" ;;
    s3ca) python3 "$here/s3_content_addressed_bench.py" "$build" ;;
    cache) python3 "$here/cache_load_bench.py" "$build" ;;
    browser) "$build/bin/browser_bench" 256 "${REPS:-7}" ;;
    node) node "$here/node_load_bench.js" --stowage "$build/bin/stowage" ;;
    serve) python3 "$here/serve_load_bench.py" "$build" ;;
    *)
      echo "all.sh: unknown bench \"$1\" (file http s3 stream digest integrity s3ca cache browser node serve)" >&2
      return 2
      ;;
  esac
}

out=$(mktemp)
trap 'rm -f "$out" "$out.readme"' EXIT
{
  echo "bench/all.sh, started $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores," \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
    "Linux $(uname -r), build type $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")," \
    "REPS=${REPS:-default}"
  echo "benches: $benches"
} >"$out"
for b in $benches; do
  echo "all.sh: running $b" >&2
  {
    echo
    echo "### $b ($(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo '```'
  } >>"$out"
  run_bench "$b" 2>&1 | tee -a "$out" >&2
  echo '```' >>"$out"
done
echo >>"$out"
echo "finished $(date -u '+%Y-%m-%d %H:%M UTC')" >>"$out"

# The block between the markers is replaced whole.
awk -v begin="$begin" -v end="$end" -v block="$out" '
  $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
  $0 == end { skip = 0 }
  !skip { print }
' "$readme" >"$out.readme"
mv "$out.readme" "$readme"
echo "all.sh: results written to $readme" >&2
