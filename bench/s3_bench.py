#!/usr/bin/env python3
"""The s3:// benchmark: saving and loading a 256 MiB model (64 weight files of
4 MiB, the converter's layout) to and from a real S3 server (moto_server on
127.0.0.1), as ratios to the aws CLI moving the same files to and from the
same server in the same run.

    bench/s3_bench.py [BUILD_DIR]        BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-s3), BENCH_MIB
         (model size, a multiple of 4, default 256), REPS (timed rounds,
         default 3)

Each variant is a fresh process, timed wall-clock (start-up included):
  no-op  stowage list of an empty prefix / aws s3api head-bucket: start-up and
         one request,
         reported so the ratios can also be given without it
  save   stowage copy --no-verify --converter-shards file://MODEL s3://...
         aws s3 cp --recursive MODEL s3://...
  load   stowage copy --no-verify s3://... file:///dev/shm/...  (durable
         false: no fsync, like the aws CLI)
         aws s3 cp --recursive s3://... /dev/shm/...
Every object is moved whole by both: 4 MiB is below the aws CLI's 8 MiB
multipart threshold and stowage's 16 MiB one, and both GET each object
whole. Both clients run with their defaults: the aws CLI 10 requests at
once, stowage 8.

The same bytes as one object (a model saved with one weights.<tag>.bin, as
stowage and tfjs-node write it), loaded three ways:
  load 1 file        stowage copy --no-verify s3://...single file:///dev/shm/...:
                     parallel ranged GETs of 16 MiB (the default part_size)
  load 1 file, 1 GET the same with multipart_threshold=1099511627776 in the URL:
                     one GET of the whole object
  aws load 1 file    aws s3 cp of the object: ranged GETs of 8 MiB, 10 at once
moto answers a ranged GET by reading the whole object and slicing it, so
on moto ranges cost the server far more than on S3; the single-GET line
shows that cost.

One untimed round warms everything up; then REPS rounds follow, alternating
the order of the variants. The median counts. Every download is compared
with the source files, or the script fails. Ratios are aws time / stowage
time (above 1.0 stowage is faster), whole and minus each client's no-op.
"""
import filecmp
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins", "s3", "testing"))
import s3_test_server  # noqa: E402

BUCKET = "bench"


def run(argv, env):
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"s3_bench: {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return elapsed


def same_files(a, b):
    names = sorted(os.listdir(a))
    if names != sorted(os.listdir(b)):
        return False
    return all(filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False) for n in names)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    data = os.environ.get("BENCH_DIR", os.path.join(build, "bench-s3"))
    mib = int(os.environ.get("BENCH_MIB", "256"))
    reps = int(os.environ.get("REPS", "3"))
    stowage = os.path.join(build, "bin", "stowage")
    maker = os.path.join(build, "bin", "file_load_bench")
    for exe in (stowage, maker):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"s3_bench: {exe} is missing; build the project first")
    if shutil.which("aws") is None:
        raise SystemExit("s3_bench: the aws CLI is needed (tests/setup.sh installs it)")

    model = os.path.join(data, "model")
    os.makedirs(data, exist_ok=True)
    subprocess.run([maker, "make", model, str(mib)], check=True, stdout=subprocess.DEVNULL)
    weight_bytes = sum(os.path.getsize(os.path.join(model, n)) for n in os.listdir(model)
                       if n.endswith(".bin"))

    server = s3_test_server.start(buckets=[BUCKET])
    shm = tempfile.mkdtemp(prefix="stowage-s3-bench-", dir="/dev/shm")
    scratch = tempfile.mkdtemp(prefix="stowage-s3-bench-")
    try:
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.path.join(scratch, "none"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(scratch, "none"),
        })
        ep = server.endpoint
        aws = ["aws", "--endpoint-url", ep, "s3"]
        q = "?endpoint=" + ep

        def drop(prefix):
            run(aws + ["rm", "--recursive", "--only-show-errors", f"s3://{BUCKET}/{prefix}"], env)

        def stowage_save():
            drop("save-stowage")
            return run([stowage, "copy", "-q", "--no-verify", "--converter-shards",
                        "file://" + model, f"s3://{BUCKET}/save-stowage{q}"], env)

        def aws_save():
            drop("save-aws")
            return run(aws + ["cp", "--recursive", "--only-show-errors", model,
                              f"s3://{BUCKET}/save-aws"], env)

        def stowage_load():
            out = os.path.join(shm, "stowage")
            shutil.rmtree(out, ignore_errors=True)
            t = run([stowage, "copy", "-q", "--no-verify", "--converter-shards",
                     "--dst-options", '{"durable": false}', f"s3://{BUCKET}/source{q}",
                     "file://" + out], env)
            if not same_files(model, out):
                raise SystemExit("s3_bench: stowage's download differs from the source")
            shutil.rmtree(out)
            return t

        def aws_load():
            out = os.path.join(shm, "aws")
            shutil.rmtree(out, ignore_errors=True)
            t = run(aws + ["cp", "--recursive", "--only-show-errors", f"s3://{BUCKET}/source",
                           out], env)
            if not same_files(model, out):
                raise SystemExit("s3_bench: the aws CLI's download differs from the source")
            shutil.rmtree(out)
            return t

        # The object loads read: the model as the aws CLI uploads it.
        run(aws + ["cp", "--recursive", "--only-show-errors", model, f"s3://{BUCKET}/source"], env)
        # The same weights as one object, and their digest for the checks.
        run([stowage, "copy", "-q", "--no-verify", "file://" + model,
             f"s3://{BUCKET}/single{q}"], env)
        # The one object holds the weight files in model.json's order
        # (shard10 comes after shard9, not after shard1).
        digest = hashlib.sha256()
        with open(os.path.join(model, "model.json")) as f:
            manifest = json.load(f)["weightsManifest"]
        for n in (p for group in manifest for p in group["paths"]):
            with open(os.path.join(model, n), "rb") as f:
                digest.update(f.read())
        single_sha256 = digest.hexdigest()
        single_key = next(o for o in subprocess.run(
            aws + ["ls", f"s3://{BUCKET}/single/"], env=env, capture_output=True, text=True,
            check=True).stdout.split() if o.startswith("weights."))

        def file_sha256(path):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return h.hexdigest()

        def stowage_load_single(query):
            out = os.path.join(shm, "stowage-single")
            shutil.rmtree(out, ignore_errors=True)
            t = run([stowage, "copy", "-q", "--no-verify", "--dst-options",
                     '{"durable": false}', f"s3://{BUCKET}/single{q}{query}", "file://" + out],
                    env)
            bins = [n for n in os.listdir(out) if n.endswith(".bin")]
            if len(bins) != 1 or file_sha256(os.path.join(out, bins[0])) != single_sha256:
                raise SystemExit("s3_bench: stowage's single-file download differs from the source")
            shutil.rmtree(out)
            return t

        def aws_load_single():
            out = os.path.join(shm, "aws-single.bin")
            t = run(aws + ["cp", "--only-show-errors", f"s3://{BUCKET}/single/{single_key}", out],
                    env)
            if file_sha256(out) != single_sha256:
                raise SystemExit("s3_bench: the aws CLI's single-file download differs")
            os.remove(out)
            return t

        # Start-up and one request, to tell the transfer from the process:
        # the aws CLI spends seconds importing Python modules here.
        def stowage_noop():
            return run([stowage, "list", "-q", f"s3://{BUCKET}/nothing{q}"], env)

        def aws_noop():
            return run(["aws", "--endpoint-url", ep, "s3api", "head-bucket", "--bucket", BUCKET],
                       env)

        variants = {"stowage save": stowage_save, "aws save": aws_save,
                    "stowage load": stowage_load, "aws load": aws_load,
                    "stowage no-op": stowage_noop, "aws no-op": aws_noop,
                    "stowage load 1 file": lambda: stowage_load_single(""),
                    "stowage load 1 file, 1 GET":
                        lambda: stowage_load_single("&multipart_threshold=1099511627776"),
                    "aws load 1 file": aws_load_single}
        times = {name: [] for name in variants}
        order = list(variants)
        for rnd in range(reps + 1):
            for name in (order if rnd % 2 == 0 else list(reversed(order))):
                t = variants[name]()
                if rnd > 0:
                    times[name].append(t)
        med = {name: statistics.median(v) for name, v in times.items()}
        mb = weight_bytes / (1 << 20)
        print(f"model: {mb:.0f} MiB in {len([n for n in os.listdir(model) if n.endswith('.bin')])}"
              f" weight files; {reps} timed rounds; median seconds (MiB/s):")
        for name in variants:
            rate = "" if name.endswith("no-op") else f"({mb / med[name]:6.1f} MiB/s)"
            print(f"  {name:26s} {med[name]:7.2f} s  {rate:16s}  "
                  f"all: {' '.join(f'{t:.2f}' for t in times[name])}")
        for op in ("save", "load"):
            whole = med[f"aws {op}"] / med[f"stowage {op}"]
            net = ((med[f"aws {op}"] - med["aws no-op"]) /
                   max(med[f"stowage {op}"] - med["stowage no-op"], 1e-9))
            print(f"{op}: aws / stowage = {whole:.2f}x; without each one's no-op time "
                  f"(start-up and one request) {net:.2f}x (target >= 1.0)")
        whole = med["aws load 1 file"] / med["stowage load 1 file"]
        print(f"load of 1 file: aws / stowage = {whole:.2f}x; stowage ranged / sharded load = "
              f"{med['stowage load 1 file'] / med['stowage load']:.2f}x; "
              f"ranged / one GET = {med['stowage load 1 file'] / med['stowage load 1 file, 1 GET']:.2f}x")
    finally:
        server.stop()
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
