#!/usr/bin/env python3
"""A real S3 server for the s3:// tests: moto_server on 127.0.0.1, optionally
with signature checking on and a fault-injecting proxy in front.

    s3_test_server.py [--auth] [--proxy] [--imds] [--max-keys N] [--bucket NAME]...

Starts moto on a free port and waits until it answers. With --auth it creates
an IAM user with an s3:* policy and an access key through moto's IAM API, then
turns authentication on (POST /moto-api/reset-auth with 0), so from then on
every request must be signed with that key. Creates the buckets. With --proxy
a small HTTP proxy is started in front of moto (see FaultProxy) and becomes
the endpoint the tests use. --max-keys makes moto answer ListObjectsV2 in
pages of N keys (MOTO_S3_DEFAULT_MAX_KEYS), so pagination shows with few keys.
--imds also starts a stand-in for the EC2 instance metadata service (IMDSv2)
that hands out this server's keys (see ImdsStub); its URL is "imds".

Prints one JSON line on stdout:
    {"endpoint": "http://127.0.0.1:PORT", "moto": "http://127.0.0.1:PORT2",
     "access_key_id": "...", "secret_access_key": "...", "auth": true}
then runs until stdin is closed (the test process ended, whatever the way) or
SIGTERM arrives, and stops everything it started.

For CTest fixtures, where the server must outlive the command that starts it:
    s3_test_server.py --daemon DIR [--bucket NAME]...   starts it in the
        background and returns once it answers, leaving in DIR: aws-config
        (profile "stowage-test": endpoint_url, region) and credentials (its
        keys), server.json (the JSON above) and pid. It stops by itself
        after --lifetime seconds (default 3600).
    s3_test_server.py --stop DIR                        stops it.

Also importable: start(auth, proxy, buckets) returns a Server to stop().
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import http.client

import boto3

REGION = "us-east-1"
POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url, proc, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} before it answered")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer at {url} within {timeout}s")


class FaultProxy:
    """Forwards every request to moto unchanged (the Host header too, so
    signatures still verify), except where a fault rule matches.

    Control (not forwarded):
      POST /__faults   JSON list of rules, replacing the current ones:
         {"method": "PUT", "contains": "partNumber=2", "status": 500,
          "code": "InternalError", "times": 1}
         "contains" is matched against "METHOD /path?query", "range" (when
         given) against the request's Range header; "times" is how
         many matching requests fail (then the rule is spent); "drop": true
         closes the connection without an answer instead; "delay_ms": d
         forwards the request after d ms instead of failing it;
         "fail_after_ms": d fails it (or drops it) only after d ms, so
         the other requests of a load are answered first;
         "strip_range": true forwards it without its Range header (a
         store that ignores Range); "strip_etag": true forwards it and
         answers without the ETag header (a store that sends none).
      GET  /__log      JSON list of {"method", "target", "copy_source",
                       "range", "if_match", "checksums", "if_none_match",
                       "status"} of every request forwarded or failed so
                       far; "checksums" names any checksum header sent
                       (x-amz-checksum-*, x-amz-sdk-checksum-*, x-amz-trailer,
                       Content-MD5, aws-chunked encoding); "status" is the
                       answer's HTTP status once it is sent (0 before, and
                       for a dropped connection).
      POST /__log/clear
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, status, body, ctype="application/xml", extra=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                body = self._body()
                if self.path == "/__faults" and self.command == "POST":
                    with proxy.lock:
                        proxy.rules = json.loads(body or b"[]")
                    return self._reply(200, b"{}", "application/json")
                if self.path == "/__log" and self.command == "GET":
                    with proxy.lock:
                        data = json.dumps(proxy.log).encode()
                    return self._reply(200, data, "application/json")
                if self.path == "/__log/clear" and self.command == "POST":
                    with proxy.lock:
                        proxy.log = []
                    return self._reply(200, b"{}", "application/json")
                line = f"{self.command} {self.path}"
                with proxy.lock:
                    checksums = [k.lower() for k in self.headers.keys()
                                 if k.lower().startswith(("x-amz-checksum", "x-amz-sdk-checksum",
                                                          "x-amz-trailer", "content-md5"))]
                    if "aws-chunked" in self.headers.get("Content-Encoding", ""):
                        checksums.append("content-encoding: aws-chunked")
                    entry = {"method": self.command, "target": self.path,
                             "copy_source": self.headers.get("x-amz-copy-source", ""),
                             "range": self.headers.get("Range", ""),
                             "if_match": self.headers.get("If-Match", ""),
                             "checksums": checksums,
                             "if_none_match": self.headers.get("If-None-Match", ""),
                             "status": 0}
                    proxy.log.append(entry)
                    rule = None
                    for r in proxy.rules:
                        if r.get("times", 1) <= 0:
                            continue
                        if r.get("method") and r["method"] != self.command:
                            continue
                        if r.get("contains") and r["contains"] not in line:
                            continue
                        if r.get("range") and r["range"] not in self.headers.get("Range", ""):
                            continue
                        r["times"] = r.get("times", 1) - 1
                        rule = r
                        break
                strip_range = rule is not None and rule.get("strip_range")
                strip_etag = rule is not None and rule.get("strip_etag")
                if rule is not None and (rule.get("delay_ms") or strip_range or strip_etag):
                    time.sleep(rule.get("delay_ms", 0) / 1000.0)
                    rule = None  # then forwarded as usual
                if rule is not None:
                    time.sleep(rule.get("fail_after_ms", 0) / 1000.0)
                    if rule.get("drop"):
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    code = rule.get("code", "InternalError")
                    xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                           f'<Message>{rule.get("message", "injected by the test proxy")}'
                           f'</Message><RequestId>PROXY</RequestId></Error>').encode()
                    with proxy.lock:
                        entry["status"] = rule.get("status", 500)
                    return self._reply(rule.get("status", 500), xml)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() in ("connection", "keep-alive"):
                            continue
                        if strip_range and k.lower() == "range":
                            continue
                        conn.putheader(k, v)
                    conn.endheaders(body if body else None)
                    resp = conn.getresponse()
                    data = resp.read()
                    with proxy.lock:
                        entry["status"] = resp.status
                    self.send_response(resp.status, resp.reason)
                    length = str(len(data))
                    for k, v in resp.getheaders():
                        if k.lower() == "content-length" and self.command == "HEAD":
                            length = v
                        if k.lower() in ("connection", "keep-alive", "transfer-encoding",
                                         "content-length", "server", "date"):
                            continue
                        if strip_etag and k.lower() == "etag":
                            continue
                        self.send_header(k, v)
                    self.send_header("Content-Length", length)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Quiet(ThreadingHTTPServer):
            # Clients that hang up (a cancelled request) are not errors here.
            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ImdsStub:
    """IMDSv2 as AWS documents it: PUT /latest/api/token with a TTL header
    gives a token; the credential paths need that token in
    X-aws-ec2-metadata-token (else 401) and answer the role name, then the
    role's keys as JSON. "fetches" counts the key requests."""

    def __init__(self, access_key_id, secret_access_key):
        stub = self
        self.fetches = 0
        token = "stowage-imds-token"
        role = "stowage-test-role"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                if self.path != "/latest/api/token" or not self.headers.get(
                        "X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._reply(400, "")
                self._reply(200, token)

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") != token:
                    return self._reply(401, "")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self._reply(200, role)
                if self.path == base + role:
                    stub.fetches += 1
                    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                    return self._reply(200, json.dumps({
                        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": access_key_id,
                        "SecretAccessKey": secret_access_key, "Token": "",
                        "Expiration": expires}))
                self._reply(404, "")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Server:
    def __init__(self, auth=False, proxy=False, buckets=(), max_keys=None, imds=False):
        self.port = free_port()
        self.moto_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        if max_keys:
            env["MOTO_S3_DEFAULT_MAX_KEYS"] = str(max_keys)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)
        self.proxy = None
        self.imds = None
        try:
            wait_until_up(self.moto_url, self.proc)
            setup = dict(endpoint_url=self.moto_url, region_name=REGION,
                         aws_access_key_id="setup", aws_secret_access_key="setup")
            self.access_key_id, self.secret_access_key = "testing", "testing-secret"
            if auth:
                iam = boto3.client("iam", **setup)
                iam.create_user(UserName="stowage")
                iam.put_user_policy(UserName="stowage", PolicyName="s3-all",
                                    PolicyDocument=POLICY)
                key = iam.create_access_key(UserName="stowage")["AccessKey"]
                self.access_key_id = key["AccessKeyId"]
                self.secret_access_key = key["SecretAccessKey"]
            s3 = boto3.client("s3", **setup)
            for b in buckets:
                s3.create_bucket(Bucket=b)
            if auth:
                req = urllib.request.Request(self.moto_url + "/moto-api/reset-auth", data=b"0",
                                             method="POST",
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=10).read()
            if proxy:
                self.proxy = FaultProxy(self.port)
            if imds:
                self.imds = ImdsStub(self.access_key_id, self.secret_access_key)
        except BaseException:
            self.stop()
            raise
        self.endpoint = (f"http://127.0.0.1:{self.proxy.port}" if self.proxy else self.moto_url)
        self.auth = auth

    def info(self):
        return {"endpoint": self.endpoint, "moto": self.moto_url,
                "imds": self.imds.url if self.imds else "",
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key, "auth": self.auth}

    def stop(self):
        if self.imds is not None:
            self.imds.stop()
            self.imds = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(auth=False, proxy=False, buckets=(), max_keys=None, imds=False):
    return Server(auth=auth, proxy=proxy, buckets=buckets, max_keys=max_keys, imds=imds)


def write_state(folder, server):
    info = server.info()
    with open(os.path.join(folder, "aws-config"), "w") as f:
        f.write(f"[profile stowage-test]\nendpoint_url = {info['endpoint']}\nregion = {REGION}\n")
    with open(os.path.join(folder, "credentials"), "w") as f:
        f.write(f"[stowage-test]\naws_access_key_id = {info['access_key_id']}\n"
                f"aws_secret_access_key = {info['secret_access_key']}\n")
    with open(os.path.join(folder, "pid"), "w") as f:
        f.write(str(os.getpid()))
    with open(os.path.join(folder, "server.json.tmp"), "w") as f:
        json.dump(info, f)
    os.replace(os.path.join(folder, "server.json.tmp"), os.path.join(folder, "server.json"))


def daemon(folder, argv):
    os.makedirs(folder, exist_ok=True)
    stop_daemon(folder)
    state = os.path.join(folder, "server.json")
    log = open(os.path.join(folder, "server.log"), "w")
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-dir", folder,
                              *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(state):
            print(open(state).read())
            return 0
        if child.poll() is not None:
            break
        time.sleep(0.1)
    log.close()
    print(f"the S3 test server did not start; its log ({folder}/server.log):\n"
          + open(os.path.join(folder, "server.log")).read())
    child.kill()
    return 1


def stop_daemon(folder):
    try:
        pid = int(open(os.path.join(folder, "pid")).read())
    except (OSError, ValueError):
        return 0
    for name in ("pid", "server.json"):
        try:
            os.remove(os.path.join(folder, name))
        except OSError:
            pass
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--auth", action="store_true")
    parser.add_argument("--proxy", action="store_true")
    parser.add_argument("--max-keys", type=int, default=None)
    parser.add_argument("--imds", action="store_true")
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--daemon", metavar="DIR")
    parser.add_argument("--stop", metavar="DIR")
    parser.add_argument("--serve-dir", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=3600)
    args = parser.parse_args()
    if args.stop:
        return stop_daemon(args.stop)
    if args.daemon:
        rest = [a for a in sys.argv[1:] if a not in ("--daemon", args.daemon)]
        return daemon(args.daemon, rest)
    server = start(args.auth, args.proxy, args.bucket, args.max_keys, args.imds)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.serve_dir:
            write_state(args.serve_dir, server)
            stop.wait(args.lifetime)
        else:
            def watch_stdin():
                sys.stdin.read()
                stop.set()

            threading.Thread(target=watch_stdin, daemon=True).start()
            print(json.dumps(server.info()), flush=True)
            while not stop.wait(0.2):
                pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
