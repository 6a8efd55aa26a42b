#!/usr/bin/env bash
# The http:// benchmark: loading a 256 MiB model (4 MiB shards) over
# loopback from `stowage serve`, as ratios to curl and to TensorFlow.js
# fetching the same files from the same server in the same run.
#
#   bench/http_load_bench.sh [BUILD_DIR]     BUILD_DIR defaults to ./build
#   env: BENCH_DIR (data folder, default BUILD_DIR/bench-http),
#        BENCH_MIB (model size, default 256), REPS (default 5),
#        SETTLE (seconds of pause before each timed run, default 1),
#        SERVER=serve|python (default serve; python uses python3 -m http.server)
#
# Variants, each a fresh process timed wall-clock (start-up included) with
# peak RSS from /usr/bin/time:
#   curl6   curl --parallel --parallel-max 6: model.json and every shard into
#           /dev/shm (memory, as a load must end in memory)
#   curl1   the same, one request at a time
#   stowage bench/http_load_bench load: stowage::load_model over http (6
#           shard requests at once, the default); the weights end in memory
#   stowage1  the same with max_parallel 1
#   tfjs    bench/http_load_tfjs.js: tf.io.http(url).load() in Node
# After the timed rounds, one untimed run of each with a touch of every byte
# (touch.h): stowage's and TF.js's sums must agree, and curl's files must
# equal the served ones, or the script fails.
set -euo pipefail

build=${1:-build}
bin=$build/bin
here=$(cd "$(dirname "$0")" && pwd)
data=${BENCH_DIR:-$build/bench-http}
mib=${BENCH_MIB:-256}
reps=${REPS:-5}
settle=${SETTLE:-1}
server_kind=${SERVER:-serve}
for exe in "$bin/http_load_bench" "$bin/file_load_bench" "$bin/stowage"; do
  [[ -x $exe ]] || { echo "http_load_bench.sh: $exe is missing; build the project first" >&2; exit 2; }
done
for tool in /usr/bin/time curl node python3; do
  command -v "$tool" >/dev/null || { echo "http_load_bench.sh: $tool is needed" >&2; exit 2; }
done
[[ -f $here/../tests/interop/node_modules/@tensorflow/tfjs/package.json ]] ||
  { echo "http_load_bench.sh: run npm ci in tests/interop (TensorFlow.js)" >&2; exit 2; }

mkdir -p "$data/store"
model=$data/store/model
"$bin/file_load_bench" make "$model" "$mib" >/dev/null
shards=("$model"/group1-shard*.bin)
weight_bytes=$(cat "${shards[@]}" | wc -c)
shm=/dev/shm/stowage-bench-curl-$$
log=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$log" "$shm"
}
trap cleanup EXIT

# The server, on a free port.
if [[ $server_kind == serve ]] && "$bin/stowage" serve --help >/dev/null 2>&1; then
  "$bin/stowage" serve --store "file://$(realpath "$data/store")" --port 0 >"$log/server.out" 2>&1 &
  server_pid=$!
  path_of() { echo "/models/model/$1"; }
else
  server_kind=python
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$data/store" >"$log/server.out" 2>&1 &
  server_pid=$!
  path_of() { echo "/model/$1"; }
fi
port=
for _ in $(seq 100); do
  port=$(grep -o -m1 -E '(port |^)[0-9]+' "$log/server.out" 2>/dev/null | grep -o -E '[0-9]+' | head -1 || true)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { echo "http_load_bench.sh: the server did not start:" >&2; cat "$log/server.out" >&2; exit 1; }
base=http://127.0.0.1:$port
model_url=$base$(path_of model.json)
curl -sf -o /dev/null "$model_url" || { echo "http_load_bench.sh: $model_url is not served" >&2; exit 1; }

curl_args=(-sS --no-progress-meter --fail -o "$shm/model.json" "$model_url")
for s in "${shards[@]}"; do
  name=$(basename "$s")
  curl_args+=(-o "$shm/$name" "$base$(path_of "$name")")
done

set_cmd() {
  case $1 in
    curl6) cmd=(curl --parallel --parallel-max 6 "${curl_args[@]}") ;;
    curl1) cmd=(curl "${curl_args[@]}") ;;
    stowage) cmd=("$bin/http_load_bench" load "$model_url") ;;
    stowage1) cmd=("$bin/http_load_bench" load "$model_url" '{"max_parallel": 1}') ;;
    tfjs) cmd=(node "$here/http_load_tfjs.js" "$model_url") ;;
  esac
}
prep() {
  rm -rf "$shm"
  mkdir -p "$shm"
}
variants=(curl6 curl1 stowage stowage1 tfjs)

for ((round = 0; round <= reps; ++round)); do
  order=("${variants[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((k = ${#variants[@]} - 1; k >= 0; --k)); do order+=("${variants[k]}"); done
  fi
  for v in "${order[@]}"; do
    prep "$v"
    set_cmd "$v"
    sleep "$settle"
    t0=$(date +%s%N)
    /usr/bin/time -f %M -o "$log/$v.rss" "${cmd[@]}" >"$log/$v.out"
    t1=$(date +%s%N)
    if [[ $v == curl6 ]] && ! cmp -s <(cat "$shm"/group1-shard*.bin) <(cat "${shards[@]}"); then
      echo "http_load_bench.sh: curl's files differ from the served ones" >&2
      exit 1
    fi
    if ((round > 0)); then
      echo $((t1 - t0)) >>"$log/$v.times"
      tail -n 1 "$log/$v.rss" >>"$log/$v.rsss"
      sed -n 's/.*load_seconds=\([0-9.]*\).*/\1/p' "$log/$v.out" >>"$log/$v.loads"
    fi
  done
done
rm -rf "$shm"

# The bytes each loaded, checked once (untimed).
"$bin/http_load_bench" check "$model_url" >"$log/stowage.check"
node "$here/http_load_tfjs.js" "$model_url" --check >"$log/tfjs.check"

median() { sort -n "$1" | sed -n "$(((reps + 1) / 2))p"; }
for v in "${variants[@]}"; do
  printf -v "${v}_s" '%s' "$(median "$log/$v.times" | awk '{printf "%.4f", $1 / 1e9}')"
  printf -v "${v}_rss" '%s' "$(median "$log/$v.rsss")"
  printf -v "${v}_all" '%s' "$(awk '{printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1e9}' "$log/$v.times")"
done
stowage_load=$(median "$log/stowage.loads")
tfjs_load=$(median "$log/tfjs.loads")

sum_of() { sed -n 's/.*sum=\([0-9a-f]*\).*/\1/p' "$log/$1.check"; }
if [[ $(sum_of stowage) != "$(sum_of tfjs)" || -z $(sum_of stowage) ]]; then
  echo "http_load_bench.sh: touch sums differ: stowage $(sum_of stowage), TF.js $(sum_of tfjs)" >&2
  exit 1
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mibps() { awk -v b="$weight_bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1048576 }'; }
best_curl=$curl6_s
if awk -v a="$curl1_s" -v b="$curl6_s" 'BEGIN { exit !(a < b) }'; then best_curl=$curl1_s; fi
cat <<REPORT
model: $weight_bytes weight bytes in ${#shards[@]} shards, served by $([[ $server_kind == serve ]] && echo "stowage serve" || echo "python3 -m http.server") at $model_url
median of $reps runs, wall-clock seconds incl. process start (every run in brackets):
  curl, 6 at once -> /dev/shm   $curl6_s   [$curl6_all]  $(mibps "$curl6_s") MiB/s  peak RSS $curl6_rss KiB
  curl, 1 at once -> /dev/shm   $curl1_s   [$curl1_all]  $(mibps "$curl1_s") MiB/s  peak RSS $curl1_rss KiB
  stowage load, 6 at once       $stowage_s   [$stowage_all]  $(mibps "$stowage_s") MiB/s  peak RSS $stowage_rss KiB
  stowage load, 1 at once       $stowage1_s   [$stowage1_all]  $(mibps "$stowage1_s") MiB/s  peak RSS $stowage1_rss KiB
  TF.js load                    $tfjs_s   [$tfjs_all]  $(mibps "$tfjs_s") MiB/s  peak RSS $tfjs_rss KiB
in-process load only (median): stowage $stowage_load s, TF.js $tfjs_load s
ratios:
  stowage throughput / best curl's   $(ratio "$best_curl" "$stowage_s")   (target >= 0.8; default settings)
  same concurrency: 6 at once $(ratio "$curl6_s" "$stowage_s"), 1 at once $(ratio "$curl1_s" "$stowage1_s")
  TF.js time / stowage time           $(ratio "$tfjs_s" "$stowage_s")   (target >= 5; in-process load only: $(ratio "$tfjs_load" "$stowage_load"))
  stowage peak RSS / TF.js's          $(ratio "$stowage_rss" "$tfjs_rss")   (target <= 0.5)
  stowage peak RSS / weight bytes     $(ratio "$((stowage_rss * 1024))" "$weight_bytes")
REPORT
