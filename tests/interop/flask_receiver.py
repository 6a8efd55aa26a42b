#!/usr/bin/env python3
"""The upload receiver from the TensorFlow.js documentation, in Flask.

tf.io.http() / model.save('http://...') documents a Flask server that takes
the multipart POST and reads request.files['model.json'] and
request.files['model.weights.bin']. This is that server, storing each upload
in <dir>/<name>/ so the tests can load it back with TensorFlow.js.

Usage: flask_receiver.py --dir DIR [--port 0]
  POST /upload/<name>   saves model.json and model.weights.bin under DIR/<name>/
Prints "PORT <n>" once it listens; exits when stdin closes.
"""
import argparse
import os
import sys
import threading

from flask import Flask, request
from werkzeug.serving import make_server

app = Flask("model-server")
STORE = "."


@app.route("/upload/<path:name>", methods=["POST", "PUT"])
def upload(name):
    folder = os.path.join(STORE, name)
    if not os.path.abspath(folder).startswith(os.path.abspath(STORE) + os.sep):
        return "bad name", 400
    os.makedirs(folder, exist_ok=True)
    # As in the TF.js documentation's example: the two form files by name.
    request.files["model.json"].save(os.path.join(folder, "model.json"))
    if "model.weights.bin" in request.files:
        request.files["model.weights.bin"].save(os.path.join(folder, "model.weights.bin"))
    return {"saved": name, "files": sorted(request.files.keys())}, 200


def main():
    global STORE
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    STORE = os.path.abspath(args.dir)
    os.makedirs(STORE, exist_ok=True)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_port, flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
