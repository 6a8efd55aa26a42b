#!/usr/bin/env python3
"""The serve load benchmark: many clients fetching models from `stowage serve`
(a file:// store) and from nginx serving the same folder, in the same run, on
loopback.

    bench/serve_load_bench.py [BUILD_DIR]      BUILD_DIR defaults to ./build
    env: BENCH_DIR (data folder, default BUILD_DIR/bench-serve),
         DURATION (seconds per measurement, default 20),
         CONNECTIONS (concurrent clients, default 64),
         REPS (rounds, default 1; the median of each figure is reported)

Two loads, each run against both servers, taking turns in each round:
  model   every client fetches model.json then the 4 weight files of a
          16 MiB model (4 x 4 MiB), over and over (a fleet loading a model)
  meta    every client fetches a 10 KiB model.json alone, over and over
          (clients polling for a new version)
The clients are wrk (2 threads, keep-alive connections, one request at a
time per connection); latency is per request. Both servers get the same
folder and the same machine: nginx with its Debian defaults plus sendfile,
one worker per core, no access log; stowage serve with its defaults and
no access log (-q). Every answer must be 200: any other status or a socket
error fails the run.

Targets (issue 16): serve's requests/s >= 0.8x nginx's, and serve's p99
latency <= 1.5x nginx's, for both loads. The script exits 1 when the run is
wrong (a server does not start, an answer is not 200), never on a missed
target: it measures, the reader judges.

Needs nginx and wrk (apt-get install nginx-light wrk; nothing else of them
is used: the script starts nginx itself, on a free port, from its own
configuration, and stops it).
"""
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
SHARD = 4 * MIB
SHARDS = 4
META_BYTES = 10 * 1024
THROUGHPUT_TARGET = 0.8
P99_TARGET = 1.5


def fail(message):
    raise SystemExit(f"serve_load_bench: {message}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc, log_path, what):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    with open(log_path) as f:
        fail(f"{what} did not start on port {port}:\n{f.read()}")


def write_model(folder, shard_count, shard_bytes, pad_to=0):
    """A model.json naming shard_count files of random bytes; model.json is
    padded (a longer topology note) to pad_to bytes when that is set."""
    os.makedirs(folder, exist_ok=True)
    paths = [f"group1-shard{i + 1}of{shard_count}.bin" for i in range(shard_count)]
    for p in paths:
        with open(os.path.join(folder, p), "wb") as f:
            f.write(os.urandom(shard_bytes))
    model = {
        "modelTopology": {"class_name": "Synthetic", "config": {"note": ""}},
        "weightsManifest": [{
            "paths": paths,
            "weights": [{"name": f"w{i}", "shape": [shard_bytes // 4], "dtype": "float32"}
                        for i in range(shard_count)],
        }],
        "format": "graph-model",
        "generatedBy": "stowage bench/serve_load_bench.py",
        "convertedBy": None,
    }
    text = json.dumps(model)
    if pad_to > len(text):
        model["modelTopology"]["config"]["note"] = "x" * (pad_to - len(text))
        text = json.dumps(model)
    with open(os.path.join(folder, "model.json"), "w") as f:
        f.write(text)
    return ["model.json"] + paths


def nginx_config(path, root, port, work):
    with open(path, "w") as f:
        f.write(f"""worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi;
  uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  server {{
    listen 127.0.0.1:{port};
    location /models/ {{ alias {root}/; }}
  }}
}}
""")


def wrk_script(path, files):
    with open(path, "w") as f:
        f.write("paths = {" + ", ".join(f'"{p}"' for p in files) + "}\n")
        f.write("""i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
""")


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def seconds(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        fail(f"cannot read the latency {text!r} in wrk's output")
    return float(m.group(1)) * UNITS[m.group(2)]


def run_wrk(url, script, duration, connections, expect_bytes_per_cycle):
    r = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
         "-s", script, url],
        capture_output=True, text=True)
    out = r.stdout
    if r.returncode != 0:
        fail(f"wrk exited {r.returncode} for {url}: {r.stderr.strip()}\n{out}")
    for bad in ("Non-2xx or 3xx responses", "Socket errors"):
        if bad in out:
            fail(f"{url}: {bad.lower()} under load:\n{out}")
    total = re.search(r"(\d+) requests in ([\d.]+)(s|m), ([\d.]+)([KMGT]?B) read", out)
    p50 = re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M)
    if not (total and p50 and p99):
        fail(f"cannot read wrk's output for {url}:\n{out}")
    requests = int(total.group(1))
    elapsed = float(total.group(2)) * (60 if total.group(3) == "m" else 1)
    size = float(total.group(4)) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30,
                                    "TB": 1 << 40}[total.group(5)]
    # A server that answers with fewer bytes than the files hold is wrong,
    # however fast: the bytes read must match the requests made.
    if size < requests * expect_bytes_per_cycle * 0.9:
        fail(f"{url}: {requests} requests read only {size:.0f} bytes")
    return {"rps": requests / elapsed, "mibs": size / elapsed / MIB,
            "p50": seconds(p50.group(1)), "p99": seconds(p99.group(1))}


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    data = os.path.abspath(os.environ.get("BENCH_DIR", os.path.join(build, "bench-serve")))
    duration = int(os.environ.get("DURATION", "20"))
    connections = int(os.environ.get("CONNECTIONS", "64"))
    reps = int(os.environ.get("REPS", "1"))
    stowage = os.path.join(build, "bin", "stowage")
    if not os.access(stowage, os.X_OK):
        fail(f"{stowage} is missing; build the project first")
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            fail(f"{tool} is needed: apt-get install nginx-light wrk")

    store = os.path.join(data, "store")
    shutil.rmtree(store, ignore_errors=True)
    model_files = write_model(os.path.join(store, "big"), SHARDS, SHARD)
    meta_files = write_model(os.path.join(store, "meta"), 1, 1024, pad_to=META_BYTES)
    meta_size = os.path.getsize(os.path.join(store, "meta", "model.json"))
    model_bytes = sum(os.path.getsize(os.path.join(store, "big", p)) for p in model_files)

    work = tempfile.mkdtemp(prefix="serve-bench-")
    loads = {
        "model": ([f"/models/big/{p}" for p in model_files], model_bytes / len(model_files)),
        "meta": (["/models/meta/model.json"], meta_size),
    }
    scripts = {}
    for name, (files, _) in loads.items():
        scripts[name] = os.path.join(work, f"{name}.lua")
        wrk_script(scripts[name], files)

    servers = {}
    procs = []
    try:
        port = free_port()
        log = os.path.join(work, "serve.log")
        proc = subprocess.Popen([stowage, "serve", "--store", f"file://{store}", "--port", str(port),
                                 "-q"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_for(port, proc, log, "stowage serve")
        servers["stowage serve"] = f"http://127.0.0.1:{port}"

        port = free_port()
        conf = os.path.join(work, "nginx.conf")
        nginx_config(conf, store, port, work)
        log = os.path.join(work, "nginx.log")
        proc = subprocess.Popen(["nginx", "-c", conf, "-e", os.path.join(work, "nginx-error.log")],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_for(port, proc, log, "nginx")
        servers["nginx"] = f"http://127.0.0.1:{port}"

        # Both servers must give the same bytes before either is timed.
        for name, (files, _) in loads.items():
            for f in files:
                with open(os.path.join(store, f[len("/models/"):]), "rb") as src:
                    want = src.read()
                for server, url in servers.items():
                    got = subprocess.run(["curl", "-sf", url + f], capture_output=True).stdout
                    if got != want:
                        fail(f"{server} answered {url + f} with other bytes than the file holds")

        results = {(load, server): [] for load in loads for server in servers}
        order = list(servers)
        for rep in range(reps):
            for load, (files, per_request) in loads.items():
                for server in (order if rep % 2 == 0 else order[::-1]):
                    results[(load, server)].append(
                        run_wrk(servers[server], scripts[load], duration, connections, per_request))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    def median(load, server, key):
        return statistics.median(r[key] for r in results[(load, server)])

    cpu = ""
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
        cpu = m.group(1) if m else "?"
    print(f"serve_load_bench, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}: "
          f"{os.cpu_count()} cores, {cpu}; {connections} connections, {duration} s per "
          f"measurement, REPS={reps} (medians)")
    print(f"model: model.json + {SHARDS} x {SHARD // MIB} MiB ({model_bytes / MIB:.1f} MiB); "
          f"meta: a {meta_size} byte model.json alone")
    print()
    print("| load | server | requests/s | MiB/s | p50 | p99 |")
    print("|---|---|---|---|---|---|")
    for load in loads:
        for server in servers:
            print(f"| {load} | {server} | {median(load, server, 'rps'):.0f} | "
                  f"{median(load, server, 'mibs'):.0f} | "
                  f"{median(load, server, 'p50') * 1e3:.2f} ms | "
                  f"{median(load, server, 'p99') * 1e3:.2f} ms |")
    print()
    for load in loads:
        ratio = median(load, "stowage serve", "rps") / median(load, "nginx", "rps")
        p99 = median(load, "stowage serve", "p99") / median(load, "nginx", "p99")
        print(f"{load}: throughput {ratio:.2f}x nginx (target >= {THROUGHPUT_TARGET}: "
              f"{'met' if ratio >= THROUGHPUT_TARGET else 'missed'}), "
              f"p99 {p99:.2f}x nginx (target <= {P99_TARGET}: "
              f"{'met' if p99 <= P99_TARGET else 'missed'})")


if __name__ == "__main__":
    main()
