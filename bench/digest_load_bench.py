#!/usr/bin/env python3
"""The digest-check load benchmark: a file:// load of a 1 GiB model (256
weight files of 4 MiB, random bytes, every file's SHA-256 in model.json)
with every digest verified, against the hashing floor of this machine and
against the same load without the check, in the same run.

    bench/digest_load_bench.py [BUILD_DIR]      BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-digest), BENCH_MIB
         (model size, a multiple of 4, default 1024), REPS (timed rounds,
         default 3)

Rows, each a fresh process timed from outside (wall seconds, median of REPS):
  floor      ls shards | xargs -P2 -n16 openssl dgst -sha256 (both cores)
  verified   file_load_bench load URL: stowage::load_model through file://,
             every digest checked, then every byte touched (bench/touch_internal.h)
  unverified file_load_bench load URL --no-verify-digests: the same load and
             touch without the check (the load before digests existed)
The page cache is warmed before the first round and the rows take turns in
each round, so all of them read cached files. The script also checks that
openssl's digests are the ones model.json records and that both loads touch
the same bytes.

Targets (issue 12): verified / floor <= 1.2 (the check uses both cores and
overlaps the page faults of the mapped files); verified / unverified is
reported. The script exits 1 when an output is wrong, never on a missed
target: it measures, the reader judges.
"""
import datetime
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

MIB = 1 << 20
SHARD = 4 * MIB
TARGET = 1.2


def fail(message):
    raise SystemExit(f"digest_load_bench: {message}")


def make_model(folder, mib):
    """256 (for 1 GiB) shards of random bytes and a model.json recording
    their digests; reused when it is already there with that size."""
    count = mib // 4
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    model_json = os.path.join(folder, "model.json")
    try:
        with open(model_json) as f:
            if (
                json.load(f)["weightsManifest"][0]["paths"] == paths
                and set(os.listdir(folder)) == set(paths) | {"model.json"}
                and all(os.path.getsize(os.path.join(folder, p)) == SHARD for p in paths)
            ):
                return paths
    except (OSError, ValueError, KeyError, IndexError):
        pass
    shutil.rmtree(folder, ignore_errors=True)  # no other size's shards left behind
    os.makedirs(folder)
    digests = []
    for p in paths:
        data = os.urandom(SHARD)
        digests.append(hashlib.sha256(data).hexdigest())
        with open(os.path.join(folder, p), "wb") as f:
            f.write(data)
    weights = [
        {"name": f"layer_{i:03d}/kernel", "shape": [SHARD // 4], "dtype": "float32"}
        for i in range(count)
    ]
    model = {
        "modelTopology": {"class_name": "Synthetic", "config": {"note": "digest bench"}},
        "weightsManifest": [{"paths": paths, "weights": weights, "sha256": digests}],
        "format": "graph-model",
        "generatedBy": "stowage bench/digest_load_bench.py",
        "convertedBy": None,
    }
    with open(model_json, "w") as f:
        json.dump(model, f)
    return paths


def timed(argv, cwd=None, shell=False):
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=cwd, shell=shell, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        fail(f"{argv} exited {r.returncode}: {r.stderr.strip()}")
    return seconds, r.stdout


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    loader = os.path.join(build, "bin", "file_load_bench")
    if not os.access(loader, os.X_OK):
        fail(f"{loader} is not built (cmake --build build --target file_load_bench)")
    data = os.environ.get("BENCH_DIR", os.path.join(build, "bench-digest"))
    mib = int(os.environ.get("BENCH_MIB", "1024"))
    reps = int(os.environ.get("REPS", "3"))
    if mib <= 0 or mib % 4:
        fail("BENCH_MIB must be a positive multiple of 4")
    folder = os.path.join(data, "model")
    paths = make_model(folder, mib)
    url = "file://" + os.path.join(folder, "model.json")
    with open(os.path.join(folder, "model.json")) as f:
        recorded = dict(zip(paths, json.load(f)["weightsManifest"][0]["sha256"]))

    floor_cmd = "ls group1-shard*.bin | xargs -P2 -n16 openssl dgst -sha256"
    rows = {
        "floor": lambda: timed(floor_cmd, cwd=folder, shell=True),
        "verified": lambda: timed([loader, "load", url]),
        "unverified": lambda: timed([loader, "load", url, "--no-verify-digests"]),
    }
    # Warm the page cache, and check each row's output once.
    for p in paths:
        with open(os.path.join(folder, p), "rb") as f:
            while f.read(16 * MIB):
                pass
    _, out = rows["floor"]()
    seen = dict(re.findall(r"SHA2?-?256\((\S+)\)= ([0-9a-f]{64})", out))
    if seen != recorded:
        fail("openssl's digests differ from the ones model.json records")
    sums = set()
    for name in ("verified", "unverified"):
        _, out = rows[name]()
        m = re.search(r"bytes=(\d+) sum=([0-9a-f]+)", out)
        if not m or int(m.group(1)) != len(paths) * SHARD:
            fail(f"{name}: unexpected output {out.strip()}")
        sums.add(m.group(2))
    if len(sums) != 1:
        fail(f"the two loads touched different bytes: {sorted(sums)}")

    times = {name: [] for name in rows}
    for _ in range(reps):
        for name, run in rows.items():
            times[name].append(run()[0])
    median = {name: statistics.median(t) for name, t in times.items()}

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    print(f"digest_load_bench {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"model: {len(paths)} x 4 MiB = {mib} MiB, random bytes, sha256 in model.json")
    print(f"machine: {os.cpu_count()} cores, {cpu}; page cache warm; REPS={reps}, medians")
    labels = {
        "floor": "floor: xargs -P2 -n16 openssl dgst -sha256",
        "verified": "file:// load, digests verified, every byte touched",
        "unverified": "file:// load, verify_digests false, every byte touched",
    }
    for name in rows:
        runs = " ".join(f"{t:.3f}" for t in times[name])
        rate = mib / median[name]
        print(f"  {labels[name]:<56} {median[name]:7.3f} s  {rate:6.0f} MiB/s  ({runs})")
    ratio_floor = median["verified"] / median["floor"]
    ratio_plain = median["verified"] / median["unverified"]
    verdict = "met" if ratio_floor <= TARGET else "MISSED"
    print(f"verified / floor      = {ratio_floor:.2f}x  (target <= {TARGET}x: {verdict})")
    print(f"verified / unverified = {ratio_plain:.2f}x")


if __name__ == "__main__":
    main()
