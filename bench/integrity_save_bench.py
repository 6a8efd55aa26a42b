#!/usr/bin/env python3
"""The integrity save benchmark (docs/integrity.md), four measures in one run:

1. What digests cost a save (issue 12's target, sha256 / none <= 1.3): a
   model held in memory, 1 GiB (256 float32 tensors of 4 MiB), saved with
   stowage::save_model to a new file:// folder in 256 shards of 4 MiB,
   "integrity" "sha256" against "none", both with "durable": false (no fsync,
   so the figures are the pipeline's, not the disk's). bench/memory_save_bench
   builds the model once and times only the saves, alternating their order
   between rounds, sync(2) before each.
1b. The same pair for a file:// -> file:// copy, `stowage copy --no-verify
   --converter-shards`, process start-up included. Not the issue's measure:
   without digests the copy never brings the bytes into the process (an
   in-kernel copy_file_range), so the digests add a whole read of the source.
2. What content-addressed names save: a 256 MiB model (64 tensors of 4 MiB)
   copied with `--shard-names sha256 --shard-size 4MiB` into a folder, then
   one tensor of the source changed and the copy made again into the same
   folder: the weight files the second save wrote (a file it kept is the same
   inode, hard-linked into the new folder; a file it wrote is a new inode).
   Target: <= 2.
3. The hashing floor of this machine, for scale: `openssl dgst -sha256` over
   the 1 GiB of shards, two processes at once (`xargs -P2 -n16`).

    bench/integrity_save_bench.py [BUILD_DIR]     BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-integrity),
         BENCH_MIB (model size, a multiple of 4, default 1024),
         REPS (timed rounds, default 3)

Each timed round runs both saves, in an order that alternates between rounds;
the output of the previous run is deleted and `sync` runs before each. The
median wall-clock time counts (the fastest run is printed too: on a shared
machine it is the least disturbed). The script checks every save and copy
(weight bytes equal the source's, recorded digests equal the files') and
exits 1 when one is wrong, never on a missed target.
"""
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

SHARD = 4 << 20
SAVE_TARGET = 1.3
FILES_TARGET = 2


def fail(message):
    raise SystemExit(f"integrity_save_bench: {message}")


def make_model(folder, mib):
    """A layers model of mib/4 float32 tensors of 4 MiB, one shard each."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    n = mib // 4
    paths = [f"group1-shard{i + 1}of{n}.bin" for i in range(n)]
    for p in paths:
        with open(os.path.join(folder, p), "wb") as f:
            f.write(os.urandom(SHARD))
    weights = [{"name": f"t{i}", "shape": [SHARD // 4], "dtype": "float32"} for i in range(n)]
    model = {
        "modelTopology": {"class_name": "Sequential", "config": {"name": "bench", "layers": []}},
        "weightsManifest": [{"paths": paths, "weights": weights}],
        "format": "layers-model",
        "generatedBy": "integrity_save_bench",
        "convertedBy": None,
    }
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(model, f)


def manifest(folder):
    with open(os.path.join(folder, "model.json")) as f:
        return json.load(f)["weightsManifest"]


def weights_digest(folder, check_recorded):
    """SHA-256 of the weight bytes in manifest order; checks each recorded
    digest against its file when check_recorded."""
    h = hashlib.sha256()
    for group in manifest(folder):
        recorded = group.get("sha256")
        if check_recorded and (recorded is None or len(recorded) != len(group["paths"])):
            fail(f"{folder}/model.json records no digest per file")
        if not check_recorded and recorded is not None:
            fail(f"{folder}/model.json records digests with integrity none")
        for i, p in enumerate(group["paths"]):
            with open(os.path.join(folder, p), "rb") as f:
                data = f.read()
            h.update(data)
            if check_recorded and hashlib.sha256(data).hexdigest() != recorded[i]:
                fail(f"{folder}/{p}: recorded digest {recorded[i]} is not the file's")
    return h.hexdigest()


def copy(stowage, src, dst, extra):
    argv = [stowage, "copy", "--no-verify", "--quiet", "file://" + src, "file://" + dst,
            "--dst-option", "durable=false"] + extra
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        fail(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return elapsed


def inodes(folder):
    return {n: os.stat(os.path.join(folder, n)).st_ino
            for n in os.listdir(folder) if n.endswith(".bin")}


def memory_saves(program, folder, mib, reps):
    """Runs memory_save_bench; returns ({"none": [s...], "sha256": [s...]},
    the same for CPU seconds) after checking both saved models against the
    weights it reports."""
    r = subprocess.run([program, folder, str(mib), str(reps)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{program} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    runs = {"none": [], "sha256": []}
    cpu = {"none": [], "sha256": []}
    expected = None
    for text in r.stdout.splitlines():
        if text.startswith("weights_sha256="):
            expected = text.split("=", 1)[1]
        else:
            kind, seconds, cpu_seconds = text.split()
            runs[kind].append(float(seconds))
            cpu[kind].append(float(cpu_seconds))
    if expected is None or len(runs["none"]) != reps or len(runs["sha256"]) != reps:
        fail(f"{program} printed something else:\n{r.stdout}")
    for kind in runs:
        dst = os.path.join(folder, kind)
        if weights_digest(dst, check_recorded=kind == "sha256") != expected:
            fail(f"{dst}: the weight bytes differ from the model saved")
    return runs, cpu


def line(label, runs):
    return (f"  {label:<24}median {statistics.median(runs):7.3f} s  best {min(runs):7.3f} s  runs "
            + " ".join(f"{s:.3f}" for s in runs))


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    stowage = os.path.join(build, "bin", "stowage")
    if not os.access(stowage, os.X_OK):
        fail(f"no stowage command at {stowage}: build the target stowage first")
    saver = os.path.join(build, "bin", "memory_save_bench")
    if not os.access(saver, os.X_OK):
        fail(f"no memory_save_bench at {saver}: build the target memory_save_bench first")
    data = os.environ.get("BENCH_DIR", os.path.join(build, "bench-integrity"))
    mib = int(os.environ.get("BENCH_MIB", "1024"))
    reps = int(os.environ.get("REPS", "3"))
    if mib % 4 or mib < 8:
        fail("BENCH_MIB must be a multiple of 4, at least 8")
    os.makedirs(data, exist_ok=True)

    # 1. A save of a model held in memory, with digests against without.
    mem, mem_cpu = memory_saves(saver, os.path.join(data, "memory"), mib, reps)

    # 1b. A file:// -> file:// copy, with digests against without.
    src = os.path.join(data, "src")
    make_model(src, mib)
    expected = weights_digest(src, check_recorded=False)
    runs = {"none": [], "sha256": []}
    kinds = ["none", "sha256"]
    for rep in range(reps + 1):  # round 0 warms the page cache, untimed
        for kind in (kinds if rep % 2 == 0 else kinds[::-1]):
            dst = os.path.join(data, "dst-" + kind)
            shutil.rmtree(dst, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            seconds = copy(stowage, src, dst, ["--converter-shards", "--integrity", kind])
            if weights_digest(dst, check_recorded=kind == "sha256") != expected:
                fail(f"{dst}: the weight bytes differ from the source's")
            if rep > 0:
                runs[kind].append(seconds)
    none = statistics.median(runs["none"])
    sha = statistics.median(runs["sha256"])
    # The hashing floor: the same files through openssl on both cores.
    shards = sorted(n for n in os.listdir(src) if n.endswith(".bin"))
    floor_runs = []
    for _ in range(reps):
        t0 = time.monotonic()
        subprocess.run(f"ls {' '.join(shards)} | xargs -P2 -n16 openssl dgst -sha256 > /dev/null",
                       shell=True, cwd=src, check=True)
        floor_runs.append(time.monotonic() - t0)
    floor = statistics.median(floor_runs)

    # 2. Content-addressed: a second save with one tensor changed.
    ca_mib = min(256, mib)
    ca_src = os.path.join(data, "ca-src")
    ca_dst = os.path.join(data, "ca-dst")
    make_model(ca_src, ca_mib)
    shutil.rmtree(ca_dst, ignore_errors=True)
    ca = ["--shard-size", str(SHARD), "--shard-names", "sha256"]
    copy(stowage, ca_src, ca_dst, ca)
    first = inodes(ca_dst)
    changed = manifest(ca_src)[0]["paths"][ca_mib // 8]
    with open(os.path.join(ca_src, changed), "r+b") as f:
        f.seek(12345)
        f.write(os.urandom(64))
    copy(stowage, ca_src, ca_dst, ca)
    second = inodes(ca_dst)
    written = sum(1 for ino in second.values() if ino not in set(first.values()))
    if weights_digest(ca_dst, check_recorded=True) != weights_digest(ca_src, False):
        fail(f"{ca_dst}: the weight bytes differ from the source's")

    mem_none = statistics.median(mem["none"])
    mem_sha = statistics.median(mem["sha256"])
    print(f"integrity_save_bench: {mib} MiB in {mib // 4} shards of 4 MiB (durable false), "
          f"REPS={reps}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("  1. save of a model held in memory to file:// (stowage::save_model, timed alone)")
    print(line("integrity none", mem["none"]))
    print(line("integrity sha256", mem["sha256"]))
    print(f"  sha256 / none           median {mem_sha / mem_none:5.2f}x  best "
          f"{min(mem['sha256']) / min(mem['none']):5.2f}x   (target <= {SAVE_TARGET}x)")
    for kind in ("none", "sha256"):
        print(f"  CPU seconds, {kind:<7}    median {statistics.median(mem_cpu[kind]):7.3f} s  runs "
              + " ".join(f"{s:.3f}" for s in mem_cpu[kind])
              + ("   (user + system, all threads)" if kind == "none" else ""))
    print("  1b. file:// -> file:// copy (stowage copy --no-verify; without digests an in-kernel "
          "copy_file_range)")
    print(line("integrity none", runs["none"]))
    print(line("integrity sha256", runs["sha256"]))
    print(f"  sha256 / none           median {sha / none:5.2f}x  best "
          f"{min(runs['sha256']) / min(runs['none']):5.2f}x")
    print(line("hashing floor", floor_runs) + "   (openssl dgst -sha256, xargs -P2)")
    print(f"  copy (sha256 - none) / floor {(sha - none) / floor:5.2f}x")
    print(f"  content-addressed {ca_mib} MiB ({len(first)} files), one tensor changed: "
          f"second save wrote {written} weight file(s) of {len(second)}   "
          f"(target <= {FILES_TARGET})")


if __name__ == "__main__":
    main()
