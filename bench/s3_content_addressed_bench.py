#!/usr/bin/env python3
"""s3:// saves with digests and content-addressed names (issue 12), on
moto_server behind the test proxy (which logs every request):

  1. A 256 MiB model (64 weight files of 4 MiB, the converter's layout) is
     saved with shard_names "sha256", then a copy of it with one tensor's
     bytes changed (inside one weight file) is saved to the same place. The
     weight-object PUTs of the second save are counted (target <= 2).
  2. The same model saved with digests (integrity "sha256", the default) and
     without (integrity "none"): median seconds and their ratio
     (target <= 1.3).

    bench/s3_content_addressed_bench.py [BUILD_DIR]   BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-s3-ca), BENCH_MIB
         (model size, a multiple of 4, default 256), REPS (timed rounds,
         default 3)

Every save is `stowage copy -q --no-verify --converter-shards file://MODEL
s3://...` in a fresh process, timed wall-clock; one untimed round warms up,
then REPS rounds alternate the order of the variants. The model loaded back
after the second content-addressed save must equal the changed model.
"""
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins", "s3", "testing"))
import s3_test_server  # noqa: E402

BUCKET = "bench"


def run(argv, env):
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"s3_content_addressed_bench: {' '.join(argv)} failed "
                         f"({r.returncode}):\n{r.stdout}{r.stderr}")
    return elapsed


def proxy_log(endpoint):
    with urllib.request.urlopen(endpoint + "/__log") as r:
        return json.loads(r.read())


def clear_log(endpoint):
    urllib.request.urlopen(urllib.request.Request(endpoint + "/__log/clear", method="POST"))


def weight_puts(entries, prefix):
    return sum(1 for e in entries if e["method"] == "PUT" and prefix in e["target"]
               and "model.json" not in e["target"])


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    data = os.environ.get("BENCH_DIR", os.path.join(build, "bench-s3-ca"))
    mib = int(os.environ.get("BENCH_MIB", "256"))
    reps = int(os.environ.get("REPS", "3"))
    stowage = os.path.join(build, "bin", "stowage")
    maker = os.path.join(build, "bin", "file_load_bench")
    for exe in (stowage, maker):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"s3_content_addressed_bench: {exe} is missing; build it first")

    model = os.path.join(data, "model")
    changed = os.path.join(data, "changed")
    os.makedirs(data, exist_ok=True)
    subprocess.run([maker, "make", model, str(mib)], check=True, stdout=subprocess.DEVNULL)
    shards = sorted(n for n in os.listdir(model) if n.endswith(".bin"))
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(model, changed)
    # One tensor's bytes changed, inside one weight file.
    with open(os.path.join(changed, shards[9]), "r+b") as f:
        f.seek(4096)
        block = bytearray(f.read(64))
        f.seek(4096)
        f.write(bytes(b ^ 0xFF for b in block))

    server = s3_test_server.start(proxy=True, buckets=[BUCKET])
    shm = tempfile.mkdtemp(prefix="stowage-s3-ca-bench-", dir="/dev/shm")
    try:
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
            "AWS_CONFIG_FILE": os.path.join(shm, "none"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(shm, "none"),
        })
        ep = server.endpoint
        q = "?endpoint=" + ep

        def save(src, prefix, options):
            return run([stowage, "copy", "-q", "--no-verify", "--converter-shards",
                        "--dst-options", options, "file://" + src,
                        f"s3://{BUCKET}/{prefix}{q}"], env)

        # 1. Content-addressed: a first save, then the changed model.
        ca = '{"shard_names": "sha256"}'
        clear_log(ep)
        t_first = save(model, "ca", ca)
        first_puts = weight_puts(proxy_log(ep), f"/{BUCKET}/ca/")
        clear_log(ep)
        t_second = save(changed, "ca", ca)
        second_puts = weight_puts(proxy_log(ep), f"/{BUCKET}/ca/")
        back = os.path.join(shm, "back")
        run([stowage, "copy", "-q", "--converter-shards", "--dst-options",
             '{"durable": false}', f"s3://{BUCKET}/ca{q}", "file://" + back], env)
        for name in shards:
            if not filecmp.cmp(os.path.join(changed, name), os.path.join(back, name),
                               shallow=False):
                raise SystemExit("s3_content_addressed_bench: the model loaded back differs")

        # 2. Digests or none.
        variants = {"sha256": '{}', "none": '{"integrity": "none"}'}
        times = {name: [] for name in variants}
        order = list(variants)
        for rnd in range(reps + 1):
            for name in (order if rnd % 2 == 0 else list(reversed(order))):
                t = save(model, "plain-" + name, variants[name])
                if rnd > 0:
                    times[name].append(t)
        med = {name: statistics.median(v) for name, v in times.items()}

        mb = sum(os.path.getsize(os.path.join(model, n)) for n in shards) / (1 << 20)
        print(f"model: {mb:.0f} MiB in {len(shards)} weight files; moto_server behind the "
              f"logging proxy")
        print(f"content-addressed: first save {first_puts} weight PUTs ({t_first:.2f} s); "
              f"second save with one tensor changed {second_puts} weight PUTs "
              f"({t_second:.2f} s) (target <= 2)")
        print(f"save, {reps} timed rounds, median seconds (MiB/s):")
        for name in variants:
            print(f"  integrity {name:6s} {med[name]:7.2f} s  ({mb / med[name]:6.1f} MiB/s)  "
                  f"all: {' '.join(f'{t:.2f}' for t in times[name])}")
        print(f"save with digests / without = {med['sha256'] / med['none']:.2f}x "
              f"(target <= 1.3)")
    finally:
        server.stop()
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
