#!/usr/bin/env python3
"""Cross-checks s3:// with an independent S3 client, the aws CLI, against a
real S3 server (moto_server, started here without authentication: the aws
CLI's recursive copies list with prefix=..%2F.., which moto 5.2.1's signature
checker rejects even when correctly signed).

For every model of a make_models.js folder (MODELS/index.json):
  stowage -> aws CLI   `stowage copy file://.../model.json s3://...` (one
                       weights.<tag>.bin, and 1024-byte shards), then
                       `aws s3 cp --recursive` downloads each into
                       OUT/<id>/s3_single and OUT/<id>/s3_sharded;
  aws CLI -> stowage   `aws s3 cp --recursive` uploads the model TF.js wrote,
                       then `stowage copy s3://.../model.json file://...`
                       writes OUT/<id>/s3_from_cli.
tfjs_load_check.js then has real TensorFlow.js load all three kinds and
compare values and predictions with what TF.js computed for the originals.

Usage: s3_cross_check.py --stowage BIN --models DIR --out DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins", "s3", "testing"))
import s3_test_server  # noqa: E402

BUCKET = "interop"


def run(argv, env):
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stowage", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if shutil.which("aws") is None:
        print("FAIL: the aws CLI is not installed (tests/setup.sh installs it)")
        return 1
    models = os.path.abspath(args.models)
    out = os.path.abspath(args.out)
    index = json.load(open(os.path.join(models, "index.json")))

    server = s3_test_server.start(buckets=[BUCKET])
    scratch = tempfile.mkdtemp(prefix="stowage-s3-interop-")
    try:
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Nothing from the user's own AWS setup.
            "AWS_CONFIG_FILE": os.path.join(scratch, "none"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(scratch, "none"),
        })
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        aws = ["aws", "--endpoint-url", server.endpoint, "s3"]
        query = "?endpoint=" + server.endpoint
        # s3_single and s3_from_cli are compared with tfjs-node's files byte for
        # byte (integrity none); s3_sharded keeps the default digests, which
        # TF.js must ignore when it loads them.
        kinds = (("s3_single", ["--integrity", "none"]), ("s3_sharded", ["--shard-size", "1024"]))
        for m in index["models"]:
            for kind in ("s3_single", "s3_sharded", "s3_from_cli"):
                shutil.rmtree(os.path.join(out, m["id"], kind), ignore_errors=True)
        failed = set()

        # The aws CLI uploads every model TF.js wrote, as they are.
        run(aws + ["cp", "--recursive", "--only-show-errors", models, f"s3://{BUCKET}/tfjs"], env)
        for m in index["models"]:
            src = os.path.join(models, m["model_json"])
            try:
                for kind, extra in kinds:
                    run([args.stowage, "copy", "file://" + src,
                         f"s3://{BUCKET}/stowage/{m['id']}/{kind}{query}", *extra], env)
                run([args.stowage, "copy", f"s3://{BUCKET}/tfjs/{m['model_json']}{query}",
                     "file://" + os.path.join(out, m["id"], "s3_from_cli"), "--integrity", "none"],
                    env)
            except RuntimeError as e:
                failed.add(m["id"])
                print(f"FAIL {m['id']}: {e}")
        # The aws CLI downloads what stowage saved: stowage/<id>/<kind>/...
        # lands in OUT/<id>/<kind>/.
        run(aws + ["cp", "--recursive", "--only-show-errors", f"s3://{BUCKET}/stowage", out], env)
        for m in index["models"]:
            for kind, _ in kinds:
                if not os.path.exists(os.path.join(out, m["id"], kind, "model.json")):
                    failed.add(m["id"])
                    print(f"FAIL {m['id']}: the aws CLI found no {kind}/model.json")
            if m["id"] not in failed:
                print(f"ok   {m['id']}")
        print(f"{len(index['models']) - len(failed)} passed, {len(failed)} failed")
        return 0 if not failed and index["models"] else 1
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
