#!/usr/bin/env python3
"""A small HTTP/1.1 server with scripted faults, for the client and plugin tests.

Usage: test_server.py --root DIR [--port 0] [--cert C --key K]
Prints "PORT <n>" on stdout once it listens; stops on SIGTERM or when stdin
closes (so a crashed test never leaves it behind).

Files under --root are served by the routes below, for any method; <p> is a
path under it.
  /replay/<case>/<key>    the raw bytes of <case>/<last segment of key>.http, then close;
  /replay?prefix=<case>/  (a ListObjectsV2) the bytes of <case>/list.http
  /files/<p>              the file (Content-Length, ETag, Last-Modified, keep-alive)
  /chunked/<p>            the file, Transfer-Encoding: chunked
  /range/<p>              the file, and for "Range: bytes=<a>-<b>" those bytes (206 with
                          Content-Range); "/range/short/<p>" answers a range one byte short
  /flaky/<n>/<code>/<p>   <code> for the first <n> requests of this URL, then the file
  /status/<code>/<p>      <code> with a small HTML page
  /html/<p>               200 with an HTML page instead of the file
  /truncate/<p>           the full Content-Length, half the bytes, then close
  /reset/<p>              the connection is reset (RST) without an answer
  /stall/<p>              the head is read, then nothing is sent for 60 s
  /stall-body/<p>         the full Content-Length, half the bytes, then nothing for 60 s
  /slow/<p>               the file in 4 KiB pieces, 20 ms apart
  /late/<route>/<p>       waits 0.5 s, then answers as /<route>/<p>
  /loop/<x>               302 to /loop/<x>x, and /loop/xxx back to /loop/x
  /redirect/<n>/<p>       302 chains <n> long, ending at /files/<p>
  /see-other              a POST answered 303 to /echo
  /goto?to=<url>          302 to <url>
  /digest/<mode>/<p>      the file, and for files not ending in .json a digest header:
                          mode "repr" Repr-Digest: sha-256=:<base64>:, "legacy"
                          Digest: SHA-256=<base64>, "wrong" Repr-Digest of other
                          bytes, "bad" a malformed Repr-Digest, "chunked" the
                          right Repr-Digest on a chunked body
  /then-close/<p>         the file, then the connection is closed without
                          "Connection: close" (a kept-alive connection gone stale)
  /auth/<p>               the file only with "Authorization: Bearer secret", else 401
  /query/<p>              the file only when the query is "?token=t1", else 403
  /echo                   any method: JSON with method, path, headers, body length and
                          sha256, and for multipart bodies every part's name,
                          filename, content type, length and sha256
  /stats                  JSON {"connections": accepted, "requests": handled}
  /store/<name>           a model store at one URL per model (for the conformance
                          suite): POST/PUT a TF.js multipart upload to store it
                          atomically under store/<name>/ (the answer names
                          {"modelUrl": "/store/<name>"}); GET answers its
                          model.json with the weight path "<last segment of
                          name>/model.weights.bin", so the weights resolve to
                          /store/<name>/model.weights.bin, also served; both
                          with an ETag (content hash) and Last-Modified
  /answer?status=S&body=B&idempotent=1
                          status S (default 200) with the body B (none when absent)
                          and, with idempotent=1, "Stowage-Upload-Idempotent: true"
  /uploads/<n>/<code>/<key>[?idempotent=1]
                          an upload receiver that counts what it gets per <key>:
                          the first <n> uploads get <code> (0: the connection is
                          reset after the body was read), later ones 200
  /upload-count/<key>     a topology-only model.json whose userDefinedMetadata is
                          {"uploads": uploads received for <key>}
  /hub/<p>                laid out like tfhub.dev: a request with the query
                          parameter tfjs-format=file is redirected (302, as the
                          hub redirects to Kaggle's storage) to /files/<p> with
                          the query and "&tfhub-redirect=true"; without it, the
                          model's web page (200, HTML)
"""
import argparse
import base64
import email.parser
import email.utils
import email.policy
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

COUNTS = {}
UPLOADS = {}
STATS = {"connections": 0, "requests": 0}
LOCK = threading.Lock()


def multipart_parts(content_type, body):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = []
    for part in msg.iter_parts():
        data = part.get_payload(decode=True) or b""
        parts.append({
            "name": part.get_param("name", header="content-disposition"),
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "text": data.decode("utf-8") if part.get_content_type() == "application/json" else None,
        })
    return parts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def send_bytes(self, code, body, content_type="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def html(self, code, text):
        self.send_bytes(code, ("<!DOCTYPE html><html><body><h1>%d</h1><p>%s</p></body></html>\n" %
                               (code, text)).encode(), "text/html; charset=utf-8")

    def read_file(self, rel):
        path = os.path.normpath(os.path.join(self.root, rel))
        if not path.startswith(os.path.abspath(self.root)) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def file_or_404(self, rel, text="no file"):
        """The bytes of rel under the root, or None once a 404 said `text`."""
        data = self.read_file(rel)
        if data is None:
            self.html(404, text)
        return data

    def start_body(self, data):
        """A 200 announcing all of data, whose bytes the route then writes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def send_half(self, rel):
        """The full Content-Length of rel (0 when absent), then half its bytes."""
        data = self.read_file(rel) or b""
        self.start_body(data)
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()

    def serve_file(self, rel):
        data = self.file_or_404(rel, "no file " + rel)
        if data is None:
            return
        kind = "application/json" if rel.endswith(".json") else "application/octet-stream"
        self.send_bytes(200, data, kind, self.validators(data, os.path.join(self.root, rel)))

    @staticmethod
    def validators(data, path):
        """ETag and Last-Modified as static servers send them: a content hash, the mtime."""
        mtime = os.stat(path).st_mtime
        return (("ETag", '"%s"' % hashlib.sha256(data).hexdigest()[:16]),
                ("Last-Modified", email.utils.formatdate(mtime, usegmt=True)))

    def replay(self, key, query):
        # Raw response bytes, sent as they are (broken framing included),
        # then the connection is closed.
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if key and key[0]:
            case, name = key[0], key[-1]
        else:
            case, name = unquote(params.get("prefix", "")).split("/")[0], "list"
        path = os.path.join(self.root, os.path.basename(case), os.path.basename(name) + ".http")
        if not os.path.isfile(path):
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
                    b"<Message>no replay file</Message></Error>")
            return self.send_bytes(404, body, "application/xml")
        with open(path, "rb") as f:
            data = f.read()
        if self.command == "HEAD":
            data = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        with LOCK:
            STATS["requests"] += 1
        url = urlsplit(self.path)
        path, query = url.path, url.query
        body = self.read_body()
        seg = path.lstrip("/").split("/")
        while seg[0] == "late" and len(seg) > 1:
            time.sleep(0.5)
            seg = seg[1:]
        route = seg[0]
        rest = "/".join(seg[1:])
        if route == "replay":
            self.replay(seg[1:], query)
        elif route == "files":
            self.serve_file(rest)
        elif route == "range":
            short = seg[1] == "short"
            rel = "/".join(seg[2:]) if short else rest
            data = self.file_or_404(rel)
            if data is None:
                return
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if not m:
                return self.send_bytes(200, data)
            first, last = int(m.group(1)), min(int(m.group(2)), len(data) - 1)
            if short:
                last -= 1
            self.send_bytes(206, data[first:last + 1], extra=(
                ("Content-Range", "bytes %d-%d/%d" % (first, last, len(data))),))
        elif route == "chunked":
            data = self.file_or_404(rest)
            if data is None:
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 1000):
                piece = data[i:i + 1000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif route == "flaky":
            n, code, rel = int(seg[1]), int(seg[2]), "/".join(seg[3:])
            with LOCK:
                COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
                count = COUNTS[self.path]
            if count <= n:
                self.html(code, "try again (%d of %d)" % (count, n))
            else:
                self.serve_file(rel)
        elif route == "status":
            self.html(int(seg[1]), "status " + seg[1])
        elif route == "html":
            self.html(200, "this is a web page, not weights")
        elif route == "truncate":
            self.send_half(rest)
            self.close_connection = True
        elif route == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif route == "stall-body":
            self.send_half(rest)
            for _ in range(600):
                time.sleep(0.1)
            self.close_connection = True
        elif route == "stall":
            for _ in range(600):
                time.sleep(0.1)
            self.close_connection = True
        elif route == "slow":
            data = self.read_file(rest) or b""
            self.start_body(data)
            try:
                for i in range(0, len(data), 4096):
                    self.wfile.write(data[i:i + 4096])
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                self.close_connection = True
        elif route == "loop":
            x = seg[1] if len(seg) > 1 else "x"
            target = "/loop/" + (x + "x" if len(x) < 3 else "x")
            self.send_bytes(302, b"", "text/plain", [("Location", target)])
        elif route == "redirect":
            n = int(seg[1])
            rel = "/".join(seg[2:])
            target = "/redirect/%d/%s" % (n - 1, rel) if n > 1 else "/files/" + rel
            if query:
                target += "?" + query
            self.send_bytes(302, b"moved", "text/plain", [("Location", target)])
        elif route == "see-other":
            self.send_bytes(303, b"", "text/plain", [("Location", "/echo")])
        elif route == "goto":
            target = query[3:] if query.startswith("to=") else "/"
            self.send_bytes(302, b"", "text/plain", [("Location", target)])
        elif route == "digest":
            mode, rel = seg[1], "/".join(seg[2:])
            data = self.file_or_404(rel, "no file " + rel)
            if data is None:
                return
            if rel.endswith(".json"):
                return self.send_bytes(200, data, "application/json")
            b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
            other = base64.b64encode(hashlib.sha256(data + b"x").digest()).decode()
            header = {"repr": ("Repr-Digest", "sha-256=:%s:" % b64),
                      "chunked": ("Repr-Digest", "sha-512=:AAAA:, sha-256=:%s:" % b64),
                      "legacy": ("Digest", "SHA-256=%s" % b64),
                      "wrong": ("Repr-Digest", "sha-256=:%s:" % other),
                      "bad": ("Repr-Digest", "sha-256=:%s:" % b64[:20])}[mode]
            if mode != "chunked":
                return self.send_bytes(200, data, "application/octet-stream", [header])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header(*header)
            self.end_headers()
            for i in range(0, len(data), 1000):
                piece = data[i:i + 1000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif route == "then-close":
            self.serve_file(rest)
            self.close_connection = True
        elif route == "auth":
            if self.headers.get("Authorization") != "Bearer secret":
                self.html(401, "missing credentials")
            else:
                self.serve_file(rest)
        elif route == "query":
            if query != "token=t1":
                self.html(403, "bad token")
            else:
                self.serve_file(rest)
        elif route == "echo":
            info = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):
                info["parts"] = multipart_parts(ctype, body)
                info["raw"] = body.decode("latin-1") if len(body) < 4096 else None
            self.send_bytes(200, json.dumps(info).encode(), "application/json")
        elif route == "store":
            self.store(unquote(rest), body)
        elif route == "answer":
            params = parse_qs(query)
            code = int(params.get("status", ["200"])[0])
            extra = [("Stowage-Upload-Idempotent", "true")] if "idempotent" in params else []
            text = params.get("body", [""])[0].encode()
            self.send_bytes(code, text, "application/json" if text else "text/plain", extra)
        elif route == "uploads":
            n, code, key = int(seg[1]), int(seg[2]), "/".join(seg[3:])
            with LOCK:
                UPLOADS[key] = UPLOADS.get(key, 0) + 1
                count = UPLOADS[key]
            extra = [("Stowage-Upload-Idempotent", "true")] if "idempotent" in parse_qs(query) else []
            if count > n:
                self.send_bytes(200, json.dumps({"uploads": count}).encode(), "application/json",
                                extra)
            elif code == 0:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
            else:
                self.send_bytes(code, b"try again", "text/plain", extra)
        elif route == "upload-count":
            with LOCK:
                count = UPLOADS.get(rest, 0)
            # A topology-only model.json, so the plugin under test can read it.
            model = {"modelTopology": {}, "userDefinedMetadata": {"uploads": count}}
            self.send_bytes(200, json.dumps(model).encode(), "application/json")
        elif route == "hub":
            if "file" not in parse_qs(query).get("tfjs-format", []):
                return self.html(200, "TensorFlow Hub: model page for " + rest)
            target = "/files/" + rest + "?" + query + "&tfhub-redirect=true"
            self.send_bytes(302, b"", "text/plain", [("Location", target)])
        elif route == "stats":
            with LOCK:
                data = json.dumps(STATS).encode()
            self.send_bytes(200, data, "application/json")
        else:
            self.html(404, "unknown route")

    def store(self, name, body):
        base = os.path.join(self.root, "store")
        folder = os.path.normpath(os.path.join(base, name))
        if not name or "\0" in name or not folder.startswith(base + os.sep):
            return self.html(400, "bad model name")
        if self.command in ("POST", "PUT"):
            ctype = self.headers.get("Content-Type", "")
            if not ctype.startswith("multipart/form-data"):
                return self.html(400, "not a multipart upload")
            files = {}
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in msg.iter_parts():
                files[part.get_filename()] = part.get_payload(decode=True) or b""
            if "model.json" not in files:
                return self.html(400, "no model.json part")
            # Written beside, then swapped in: a reader sees the old model or the new one.
            tmp = folder + ".tmp-%d" % threading.get_ident()
            try:
                os.makedirs(tmp, exist_ok=True)
                for f in ("model.json", "model.weights.bin"):
                    if f in files:
                        with open(os.path.join(tmp, f), "wb") as out:
                            out.write(files[f])
                old = folder + ".old-%d" % threading.get_ident()
                with LOCK:
                    if os.path.isdir(folder):
                        os.rename(folder, old)
                    os.rename(tmp, folder)
                if os.path.isdir(old):
                    for f in os.listdir(old):
                        os.remove(os.path.join(old, f))
                    os.rmdir(old)
            except OSError as e:
                return self.html(507 if e.errno == 28 else 400, "cannot store: %s" % e.strerror)
            answer = {"stored": name, "modelUrl": "/store/" + quote(name)}
            return self.send_bytes(200, json.dumps(answer).encode(), "application/json")
        if self.command not in ("GET", "HEAD"):
            return self.html(405, "method not allowed")
        if os.path.isfile(os.path.join(folder, "model.json")):
            with open(os.path.join(folder, "model.json"), "rb") as f:
                data = f.read()
            # The bytes stay as uploaded but for the one path TF.js writes.
            # parseUrl keeps everything up to the last '/' of the URL.
            leaf = quote(name.split("/")[-1], safe="")
            path = leaf + "/model.weights.bin" if leaf else "model.weights.bin"
            data = data.replace(b'"./model.weights.bin"', json.dumps(path).encode())
            return self.send_bytes(200, data, "application/json",
                                   self.validators(data, os.path.join(folder, "model.json")))
        if os.path.isfile(folder) and not os.path.basename(folder).startswith("."):
            with open(folder, "rb") as f:
                data = f.read()
            return self.send_bytes(200, data, extra=self.validators(data, folder))
        return self.html(404, "no model " + name)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = handle_any

    def __getattr__(self, name):
        # Any other method token (PROPFIND, "patch", ...) is handled the same.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # Clients that hang up early are part of the tests.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=".")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    Handler.root = os.path.abspath(args.root)
    server = Server(("127.0.0.1", args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        sys.stdin.read()  # returns when the test closes stdin or exits
    except KeyboardInterrupt:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
