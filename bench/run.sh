#!/usr/bin/env bash
# The file:// benchmark: loading and saving a 1 GiB model of 4 MiB shards
# with stowage, as ratios to baselines measured in the same run on the same
# files. Warm page cache throughout (dropping caches needs root): one
# untimed round, then REPS timed rounds of every command; medians count.
#
#   bench/run.sh [BUILD_DIR]        BUILD_DIR defaults to ./build
#   env: BENCH_DIR (data folder, default BUILD_DIR/bench-data),
#        BENCH_MIB (model size, default 1024), REPS (default 5),
#        SETTLE (seconds of pause before each timed run, default 1)
#
# Baselines: `cat` of the shards to /dev/null; bench/mmap_touch (mmap each
# shard and read every byte, bench/touch_internal.h); `cp -r` of the model folder.
# Measured: file_load_bench load (stowage::load_model through file:// and the
# same touch of every byte) and file_load_bench save (load_model, untouched,
# then save_model to a new folder, durable: false, 4 MiB shards; the
# save_model call is also timed alone, as a host saves a model it holds).
set -euo pipefail

build=${1:-build}
bin=$build/bin
data=${BENCH_DIR:-$build/bench-data}
mib=${BENCH_MIB:-1024}
reps=${REPS:-5}
settle=${SETTLE:-1}
for exe in "$bin/file_load_bench" "$bin/mmap_touch"; do
  [[ -x $exe ]] || { echo "run.sh: $exe is missing; build the project first" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

mkdir -p "$data"
model=$data/model
"$bin/file_load_bench" make "$model" "$mib"
shards=("$model"/group1-shard*.bin)
weight_bytes=$(cat "${shards[@]}" | wc -c)
log=$(mktemp -d)
trap 'rm -rf "$log" "$data/cp_out" "$data/save_out"' EXIT

# The variants: set_cmd NAME sets cmd to the command line; prep NAME clears
# what an earlier run left (untimed).
model_url="file://$(realpath "$model")/model.json"
set_cmd() {
  case $1 in
    cat) cmd=(sh -c 'cat "$@" >/dev/null' cat "${shards[@]}") ;;
    mmap) cmd=("$bin/mmap_touch" "${shards[@]}") ;;
    load) cmd=("$bin/file_load_bench" load "$model_url") ;;
    cp) cmd=(cp -r "$model" "$data/cp_out") ;;
    save) cmd=("$bin/file_load_bench" save "$model_url" "$data/save_out") ;;
  esac
}
prep() {
  case $1 in
    cp) rm -rf "$data/cp_out" ;;
    save) rm -rf "$data/save_out" ;;
  esac
}
variants=(cat mmap load cp save)

# Round 0 warms the cache, rounds 1..REPS are timed. Within a round the
# variants run one after another, in alternating order, so a disturbance
# from elsewhere on the machine spreads over all of them instead of hitting
# one. Each timed run is preceded by its prep, a sync and a pause of SETTLE
# seconds, so earlier writes and deletions are not flushed during it. Wall-clock ns per run; peak RSS (KiB) from /usr/bin/time.
for ((round = 0; round <= reps; ++round)); do
  order=("${variants[@]}")
  if ((round % 2 == 0)); then  # alternate the order: no variant always follows another
    order=()
    for ((k = ${#variants[@]} - 1; k >= 0; --k)); do order+=("${variants[k]}"); done
  fi
  for v in "${order[@]}"; do
    prep "$v"
    set_cmd "$v"
    sync
    sleep "$settle"
    t0=$(date +%s%N)
    /usr/bin/time -f '%M %U %S' -o "$log/$v.rss" "${cmd[@]}" >"$log/$v.out"
    t1=$(date +%s%N)
    if ((round > 0)); then
      echo $((t1 - t0)) >>"$log/$v.times"
      if [[ $v == save ]]; then
        sed -n 's/.*save_seconds=\([0-9.]*\).*/\1/p' "$log/save.out" |
          awk '{printf "%d\n", $1 * 1e9}' >>"$log/save_only.times"
      fi
      tail -n 1 "$log/$v.rss" | awk '{print $1}' >>"$log/$v.rsss"
      tail -n 1 "$log/$v.rss" | awk '{printf "%d\n", ($2 + $3) * 1e9}' >>"$log/$v.cpus"
    fi
  done
done
median() { sort -n "$1" | sed -n "$(((reps + 1) / 2))p"; }
save_only_s=$(median "$log/save_only.times" | awk '{printf "%.4f", $1 / 1e9}')
save_only_all=$(awk '{printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1e9}' "$log/save_only.times")
for v in "${variants[@]}"; do
  printf -v "${v}_s" '%s' "$(median "$log/$v.times" | awk '{printf "%.4f", $1 / 1e9}')"
  printf -v "${v}_rss" '%s' "$(median "$log/$v.rsss")"
  printf -v "${v}_cpu" '%s' "$(median "$log/$v.cpus" | awk '{printf "%.2f", $1 / 1e9}')"
  printf -v "${v}_all" '%s' "$(awk '{printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1e9}' "$log/$v.times")"
done

sum_of() { sed -n 's/.*sum=\([0-9a-f]*\).*/\1/p' "$log/$1.out"; }
if [[ $(sum_of mmap) != "$(sum_of load)" ]]; then
  echo "run.sh: touch sums differ: mmap_touch $(sum_of mmap), stowage load $(sum_of load)" >&2
  exit 1
fi
if ! cmp -s <(cat "$data/save_out"/group1-shard*.bin) <(cat "${shards[@]}"); then
  echo "run.sh: the saved shards differ from the source" >&2
  exit 1
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
rss_bytes=$((load_rss * 1024))
cat <<REPORT
model: $weight_bytes weight bytes in ${#shards[@]} shards at $model
median of $reps warm-cache runs: wall seconds [every run], CPU seconds (user + system), peak RSS
  cat shards > /dev/null   $cat_s [$cat_all]  cpu $cat_cpu
  mmap_touch               $mmap_s [$mmap_all]  cpu $mmap_cpu  rss $mmap_rss KiB
  stowage load + touch     $load_s [$load_all]  cpu $load_cpu  rss $load_rss KiB
  cp -r                    $cp_s [$cp_all]  cpu $cp_cpu
  stowage load + save      $save_s [$save_all]  cpu $save_cpu  rss $save_rss KiB
    of which save_model    $save_only_s [$save_only_all]
ratios:
  load / mmap_touch        $(ratio "$load_s" "$mmap_s")   (target <= 1.1)
  load / cat               $(ratio "$load_s" "$cat_s")
  peak RSS / weight bytes  $(ratio "$rss_bytes" "$weight_bytes")   (target <= 1.1)
  save_model / cp          $(ratio "$save_only_s" "$cp_s")   (target <= 1.3)
  load + save / cp         $(ratio "$save_s" "$cp_s")
the same ratios in CPU time (steadier when other work shares the machine):
  load / mmap_touch        $(ratio "$load_cpu" "$mmap_cpu")
  load + save / cp         $(ratio "$save_cpu" "$cp_cpu")
load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)
REPORT
