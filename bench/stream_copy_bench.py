#!/usr/bin/env python3
"""The streaming-copy benchmark: `stowage copy` of a 1 GiB model (256 weight
files of 4 MiB) between schemes, streaming (the default: shards go from the
source's load to the destination's save through a bounded queue) against the
materialising copy of ABI 1.0 (`--no-streaming`: the whole model in memory
between load and save), in the same run, with a plain-tool baseline per pair.

    bench/stream_copy_bench.py [BUILD_DIR]      BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-stream), BENCH_MIB
         (model size, a multiple of 4, default 1024), REPS (timed rounds,
         default 3), PAIRS (comma-separated subset of the pair names below)

Pairs (each copy a fresh `stowage copy --no-verify` process):
  serve->file    http:// from `stowage serve` to file:// in /dev/shm
  static->file   http:// from a plain static server (python3 -m http.server)
  s3->file       s3:// on moto_server to file:// in /dev/shm
  file->s3       file:// to s3:// on moto_server
file:// destinations are in /dev/shm with durable false, so the figures are
the pipeline's, not the disk's. Baselines: curl (6 at once) into /dev/shm for
the http pairs, the aws CLI (`aws s3 cp --recursive`) for the s3 pairs.
Peak RSS comes from /usr/bin/time (the stowage process alone; the servers
run in other processes). The floor of this machine is printed first: the
seconds `dd` takes to fault in 256 MiB of fresh memory, which a materialising
copy pays for every 256 MiB it holds.

Targets (issue: bounded-memory copies): streaming peak RSS <= 128 MiB for
every pair, streaming wall time <= 1.1x the materialising copy's. The script
exits 1 when a copy's output differs from the source, never on a missed
target: it measures, the reader judges.
"""
import hashlib
import json
import os
import re
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
RSS_TARGET_MIB = 128
TIME_TARGET = 1.1


def fail(message):
    raise SystemExit(f"stream_copy_bench: {message}")


def timed(argv, env=None, rss=True):
    """Runs argv; returns (seconds, peak RSS KiB or None, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = (["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + argv) if rss else argv
        t0 = time.monotonic()
        r = subprocess.run(full, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        if r.returncode != 0:
            fail(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        peak = None
        if rss:
            lines = [ln for ln in rss_file.read().splitlines() if ln.strip()]
            peak = int(lines[-1])
        return elapsed, peak, r.stdout


def weight_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".bin"))


def weights_digest(folder):
    """SHA-256 of the weight bytes in model.json's manifest order: file names
    differ between layouts (s3 tags them), the bytes in order may not."""
    with open(os.path.join(folder, "model.json")) as f:
        manifest = json.load(f)["weightsManifest"]
    h = hashlib.sha256()
    for group in manifest:
        for path in group["paths"]:
            with open(os.path.join(folder, path), "rb") as w:
                for chunk in iter(lambda: w.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def same_model(a, b):
    return weights_digest(a) == weights_digest(b)


def wait_for_port(log_path, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            break
        try:
            with open(log_path) as f:
                m = re.search(r"(?:port |:)(\d{2,5})\b", f.read())
            if m:
                return int(m.group(1))
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    with open(log_path) as f:
        fail(f"{what} did not start:\n{f.read()}")


def machine_floor():
    """Seconds to fault in 256 MiB of fresh memory (dd's buffer), median of 3."""
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
                       check=True, capture_output=True)
        runs.append(time.monotonic() - t0)
    return statistics.median(runs)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    data = os.path.abspath(os.environ.get("BENCH_DIR", os.path.join(build, "bench-stream")))
    mib = int(os.environ.get("BENCH_MIB", "1024"))
    reps = int(os.environ.get("REPS", "3"))
    wanted = os.environ.get("PAIRS", "serve->file,static->file,s3->file,file->s3").split(",")
    stowage = os.path.join(build, "bin", "stowage")
    maker = os.path.join(build, "bin", "file_load_bench")
    for exe in (stowage, maker):
        if not os.access(exe, os.X_OK):
            fail(f"{exe} is missing; build the project first")
    for tool in ("/usr/bin/time", "curl", "aws", "dd"):
        if shutil.which(tool) is None:
            fail(f"{tool} is needed (tests/setup.sh installs it)")

    store = os.path.join(data, "store")
    model = os.path.join(store, "model")
    os.makedirs(store, exist_ok=True)
    subprocess.run([maker, "make", model, str(mib)], check=True, stdout=subprocess.DEVNULL)
    shards = weight_files(model)
    weight_bytes = sum(os.path.getsize(os.path.join(model, n)) for n in shards)

    procs = []
    shm = tempfile.mkdtemp(prefix="stowage-stream-bench-", dir="/dev/shm")
    scratch = tempfile.mkdtemp(prefix="stowage-stream-bench-")
    s3 = None
    try:
        def start(argv, name):
            log_path = os.path.join(scratch, name + ".log")
            log = open(log_path, "w")
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            return wait_for_port(log_path, p, name)

        serve_port = start([stowage, "serve", "--store", "file://" + store, "--port", "0"],
                           "serve")
        static_port = start([sys.executable, "-u", "-m", "http.server", "0", "--bind",
                             "127.0.0.1", "--directory", store], "static")
        sources = {
            "serve": f"http://127.0.0.1:{serve_port}/models/model",
            "static": f"http://127.0.0.1:{static_port}/model",
        }
        env = dict(os.environ)
        need_s3 = any("s3" in p for p in wanted)
        if need_s3:
            s3 = s3_test_server.start(buckets=[BUCKET])
            env.update({
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.path.join(scratch, "none"),
                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(scratch, "none"),
            })
            aws = ["aws", "--endpoint-url", s3.endpoint, "s3"]
            q = "?endpoint=" + s3.endpoint
            subprocess.run(aws + ["cp", "--recursive", "--only-show-errors", model,
                                  f"s3://{BUCKET}/source"], env=env, check=True)

        out_dir = os.path.join(shm, "out")
        fetched = os.path.join(scratch, "fetched")
        file_dst = ["--dst-options", '{"durable": false}', "file://" + out_dir]

        def check_file_out(folder):
            if not same_model(model, folder):
                fail(f"the copy in {folder} differs from the source model")
            shutil.rmtree(folder)

        def check_s3_out(prefix):
            shutil.rmtree(fetched, ignore_errors=True)
            subprocess.run(aws + ["cp", "--recursive", "--only-show-errors",
                                  f"s3://{BUCKET}/{prefix}", fetched], env=env, check=True)
            if not same_model(model, fetched):
                fail(f"the copy in s3://{BUCKET}/{prefix} differs from the source model")
            shutil.rmtree(fetched)
            subprocess.run(aws + ["rm", "--recursive", "--only-show-errors",
                                  f"s3://{BUCKET}/{prefix}"], env=env, check=True)

        def stowage_copy(src, dst, streaming, check):
            argv = [stowage, "copy", "--json", "--no-verify", "--converter-shards"]
            if not streaming:
                argv.append("--no-streaming")
            seconds, peak, out = timed(argv + [src] + dst, env)
            stats = json.loads(out)
            check()
            return seconds, peak, stats

        def curl_fetch(base):
            shutil.rmtree(out_dir, ignore_errors=True)
            os.makedirs(out_dir)
            argv = ["curl", "-sS", "--fail", "--parallel", "--parallel-max", "6"]
            for n in shards + ["model.json"]:
                argv += ["-o", os.path.join(out_dir, n), f"{base}/{n}"]
            seconds, peak, _ = timed(argv)
            check_file_out(out_dir)
            return seconds, peak, None

        def aws_cp(src, dst, check):
            seconds, peak, _ = timed(aws + ["cp", "--recursive", "--only-show-errors", src, dst],
                                     env)
            check()
            return seconds, peak, None

        variants = {}
        for pair in wanted:
            if pair in ("serve->file", "static->file"):
                src = sources[pair.split("-")[0]] + "/model.json"
                variants[pair] = {
                    "streaming": lambda s=src: stowage_copy(
                        s, file_dst, True, lambda: check_file_out(out_dir)),
                    "materialising": lambda s=src: stowage_copy(
                        s, file_dst, False, lambda: check_file_out(out_dir)),
                    "curl": lambda s=src: curl_fetch(s.rsplit("/", 1)[0]),
                }
            elif pair == "s3->file":
                src = f"s3://{BUCKET}/source{q}"
                variants[pair] = {
                    "streaming": lambda: stowage_copy(
                        src, file_dst, True, lambda: check_file_out(out_dir)),
                    "materialising": lambda: stowage_copy(
                        src, file_dst, False, lambda: check_file_out(out_dir)),
                    "aws": lambda: aws_cp(f"s3://{BUCKET}/source", out_dir,
                                          lambda: check_file_out(out_dir)),
                }
            elif pair == "file->s3":
                variants[pair] = {
                    "streaming": lambda: stowage_copy(
                        "file://" + model, [f"s3://{BUCKET}/dst{q}"], True,
                        lambda: check_s3_out("dst")),
                    "materialising": lambda: stowage_copy(
                        "file://" + model, [f"s3://{BUCKET}/dst{q}"], False,
                        lambda: check_s3_out("dst")),
                    "aws": lambda: aws_cp(model, f"s3://{BUCKET}/dst", lambda: check_s3_out("dst")),
                }
            else:
                fail(f"unknown pair '{pair}' in PAIRS")

        floor = machine_floor()
        results = {p: {v: [] for v in vs} for p, vs in variants.items()}
        # Round 0 warms caches and servers up and is not counted; then the
        # order of the variants alternates so no one always runs first.
        for rnd in range(reps + 1):
            for pair, vs in variants.items():
                names = list(vs) if rnd % 2 == 0 else list(reversed(vs))
                for name in names:
                    r = vs[name]()
                    if rnd > 0:
                        results[pair][name].append(r)

        gib = weight_bytes / (1 << 30)
        print(f"stream_copy_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
              f"{weight_bytes} weight bytes ({gib:.2f} GiB) in {len(shards)} files; "
              f"median of {reps} rounds")
        print(f"machine floor: {floor:.3f} s to fault in 256 MiB of fresh memory "
              f"(dd bs=256M); {floor * weight_bytes / (256 << 20):.2f} s for the model's bytes")
        verdicts = []
        for pair, per in results.items():
            print(f"{pair}:")
            med = {}
            for name, runs in per.items():
                seconds = statistics.median(r[0] for r in runs)
                rss = statistics.median(r[1] for r in runs) / 1024
                med[name] = (seconds, rss)
                extra = ""
                if runs[0][2] is not None:
                    st = runs[0][2]
                    peak_queued = max(r[2]["peakQueuedBytes"] for r in runs)
                    extra = (f"  streamed={str(st['streamed']).lower()}"
                             f" peakQueued={peak_queued / (1 << 20):.0f} MiB")
                print(f"  {name:14s} {seconds:7.2f} s  {gib / seconds * 1024:7.1f} MiB/s  "
                      f"peak RSS {rss:7.1f} MiB  all: "
                      f"{' '.join(f'{r[0]:.2f}' for r in runs)}{extra}")
            s_time, s_rss = med["streaming"]
            m_time, m_rss = med["materialising"]
            base = "curl" if "curl" in med else "aws"
            ok_rss = s_rss <= RSS_TARGET_MIB
            ok_time = s_time <= TIME_TARGET * m_time
            streamed = all(r[2].get("streamed") for r in per["streaming"])
            verdicts.append(ok_rss and ok_time and streamed)
            if not streamed:
                print("  NOT STREAMED: the copy held the whole model (a scheme of the pair "
                      "lacks streaming_load or streaming_save); the targets below do not apply")
            print(f"  streaming / materialising: time {s_time / m_time:.2f}x "
                  f"(target <= {TIME_TARGET}: {'met' if ok_time else 'MISSED'}), "
                  f"peak RSS {s_rss:.0f} MiB vs {m_rss:.0f} MiB "
                  f"(target <= {RSS_TARGET_MIB} MiB: {'met' if ok_rss else 'MISSED'}); "
                  f"{base} / streaming time {med[base][0] / s_time:.2f}x")
        print(f"targets met for {sum(verdicts)} of {len(verdicts)} pairs")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
