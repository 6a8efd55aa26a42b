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
#   stowage_nv  the same as stowage with --no-verify-digests (model.json
#           records every shard's sha256; the default load checks them)
#   tfjs    bench/http_load_tfjs.js: tf.io.http(url).load() in Node
# and the machine's floors, timed the same way in the same rounds:
#   cat     cat of every shard > /dev/null (page cache)
#   touch   bench/fresh_touch.c: fault in MIB of fresh anonymous memory
#   touchhuge  the same with MADV_HUGEPAGE
#   recv_*  bench/recv_into.c: the shards' bytes sent by sendfile over
#           loopback and received in 4 MiB bodies into fresh anonymous
#           memory (anon), MAP_POPULATE'd memory (populate), a reused buffer
#           written to a memfd (memfd: curl -> /dev/shm's path) or spliced
#           into a memfd (splice: stowage's path for plain http)
# After the timed rounds, one untimed run of each with a touch of every byte
# (touch_internal.h): stowage's and TF.js's sums must agree, and curl's files must
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
for exe in "$bin/http_load_bench" "$bin/file_load_bench" "$bin/stowage" "$bin/fresh_touch" \
  "$bin/recv_into"; do
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
blob=$data/shards.bin  # every shard in one file, for recv_into
[[ -f $blob && $(stat -c %s "$blob") == "$weight_bytes" ]] || cat "${shards[@]}" >"$blob"
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
    stowage_nv) cmd=("$bin/http_load_bench" load "$model_url" --no-verify-digests) ;;
    tfjs) cmd=(node "$here/http_load_tfjs.js" "$model_url") ;;
    cat) cmd=(sh -c 'cat "$@" >/dev/null' cat "${shards[@]}") ;;
    touch) cmd=("$bin/fresh_touch" "$mib") ;;
    touchhuge) cmd=("$bin/fresh_touch" "$mib" huge) ;;
    recv_*) cmd=("$bin/recv_into" "${1#recv_}" "$blob") ;;
  esac
}
prep() {
  rm -rf "$shm"
  mkdir -p "$shm"
}
variants=(curl6 curl1 stowage stowage1 stowage_nv tfjs cat touch touchhuge recv_anon recv_populate
  recv_memfd recv_splice)

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
stowage_nv_load=$(median "$log/stowage_nv.loads")
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
row() {  # label variant
  local s=${2}_s rss=${2}_rss all=${2}_all
  printf '  %-44s %s   [%s]  %5s MiB/s  peak RSS %s KiB\n' "$1" "${!s}" "${!all}" \
    "$(mibps "${!s}")" "${!rss}"
}
cat <<REPORT
http_load_bench $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)
model: $weight_bytes weight bytes in ${#shards[@]} shards (sha256 of each in model.json), served by $([[ $server_kind == serve ]] && echo "stowage serve" || echo "python3 -m http.server") at $model_url
median of $reps runs, wall-clock seconds incl. process start (every run in brackets):
floors of this machine:
$(row "cat shards > /dev/null (page cache)" cat)
$(row "fault in ${mib} MiB of fresh memory" touch)
$(row "the same with MADV_HUGEPAGE" touchhuge)
$(row "loopback receive into fresh memory" recv_anon)
$(row "loopback receive into MAP_POPULATE memory" recv_populate)
$(row "loopback receive, buffer -> memfd write" recv_memfd)
$(row "loopback receive, splice -> memfd" recv_splice)
loads:
$(row "curl, 6 at once -> /dev/shm" curl6)
$(row "curl, 1 at once -> /dev/shm" curl1)
$(row "stowage load, 6 at once" stowage)
$(row "stowage load, 1 at once" stowage1)
$(row "stowage load, 6 at once, digests unchecked" stowage_nv)
$(row "TF.js load" tfjs)
in-process load only (median): stowage $stowage_load s, digests unchecked $stowage_nv_load s, TF.js $tfjs_load s
ratios:
  stowage throughput / best curl's   $(ratio "$best_curl" "$stowage_s")   (target >= 0.8; default settings: every shard's sha256 checked)
  the same, digests unchecked        $(ratio "$best_curl" "$stowage_nv_s")   (curl checks none)
  same concurrency: 6 at once $(ratio "$curl6_s" "$stowage_s"), 1 at once $(ratio "$curl1_s" "$stowage1_s")
  TF.js time / stowage time           $(ratio "$tfjs_s" "$stowage_s")   (target >= 5; in-process load only: $(ratio "$tfjs_load" "$stowage_load"))
  stowage peak RSS / TF.js's          $(ratio "$stowage_rss" "$tfjs_rss")   (target <= 0.5)
  stowage peak RSS / weight bytes     $(ratio "$((stowage_rss * 1024))" "$weight_bytes")   (target <= 1.1; digests unchecked: $(ratio "$((stowage_nv_rss * 1024))" "$weight_bytes"), the bytes untouched)
REPORT
