#!/usr/bin/env python3
"""Runs the plugin conformance suite on http:// against a model store served
by core/net/test_server.py (/store/<name>: a TF.js multipart upload is
stored at the URL it was posted to, and that URL loads it back).

Usage: run_conformance.py RUNNER PLUGIN_MANIFEST [runner arguments...]
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    runner, manifest, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="stowage-http-conformance-") as root:
        server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "..", "..", "core", "net", "test_server.py"), "--root", root],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            if not line.startswith("PORT "):
                print("run_conformance.py: the test server did not start", file=sys.stderr)
                return 1
            port = int(line.split()[1])
            # URLs resolve ".." like paths (RFC 3986), so the suite's
            # climbing names are not tried against the root.
            return subprocess.call([runner, "--plugin", manifest, "--scheme", "http", "--root",
                                    "http://127.0.0.1:%d/store" % port,
                                    "--deviation", "dotdot_resolves"] + extra)
        finally:
            server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
