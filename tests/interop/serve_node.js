#!/usr/bin/env node
// Real TensorFlow.js (4.22.0, Node 20's fetch and FormData) against
// `stowage serve`:
//   * model.save('http://127.0.0.1:PORT/models/m') uploads into the server
//     (POST, and PUT through tf.io.http), tf.loadLayersModel reads it back
//     from /models/m/model.json: weights bit-identical, predictions equal,
//     user metadata kept;
//   * the folder a file:// store holds is a valid stowage model (stowage
//     verify), in one weights file or in shards (-o shard_size), each shard
//     fetched by TF.js, more at once than the per-client connection cap;
//   * memory:// (served as a rendered model.json and one weights file);
//   * a bearer token (--token-file, --auth-reads): refused without it, TF.js's
//     requestInit headers carry it on the upload and on every load request;
//   * SIGTERM stops the server with exit status 0.
// Usage: node serve_node.js --stowage PATH
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const common = require('./common');
const serve = require('./serve_common');

let tf = null;

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A small MLP with about 1 MiB of weights and seeded values.
function makeModel(seed) {
  const model = tf.sequential();
  model.add(tf.layers.dense({units: 256, inputShape: [8], activation: 'relu'}));
  model.add(tf.layers.dense({units: 1024, activation: 'tanh'}));
  model.add(tf.layers.dense({units: 3}));
  const rand = rng(seed);
  const values = model.getWeights().map((w) => {
    const data = new Float32Array(w.size);
    for (let i = 0; i < data.length; ++i) data[i] = rand() - 0.5;
    return tf.tensor(data, w.shape, 'float32');
  });
  model.setWeights(values);
  values.forEach((t) => t.dispose());
  model.setUserDefinedMetadata({labels: ['a', 'b', 'c'], seed});
  return model;
}

const kInput = () => tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8], [-1, 0.5, 0, 2, -3, 1, 0.25, 9]]);

function bits(typed) {
  return Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('hex');
}

async function checkSame(original, loaded, what) {
  const a = original.getWeights();
  const b = loaded.getWeights();
  assert.strictEqual(b.length, a.length, `${what}: weight count`);
  for (let i = 0; i < a.length; ++i) {
    assert.deepStrictEqual(b[i].shape, a[i].shape, `${what}: shape of ${a[i].name}`);
    assert.strictEqual(
        bits(b[i].dataSync()), bits(a[i].dataSync()), `${what}: values of ${a[i].name}`);
  }
  const x = kInput();
  const want = original.predict(x).dataSync();
  const got = loaded.predict(x).dataSync();
  assert.strictEqual(bits(got), bits(want), `${what}: predictions differ`);
  assert.deepStrictEqual(
      loaded.getUserDefinedMetadata(), original.getUserDefinedMetadata(), `${what}: user metadata`);
  x.dispose();
}

// Serve's store records every weight file's SHA-256 (docs/integrity.md):
// each group of the stored model.json lists one digest per path, and each is
// the digest of that file. TF.js, which loaded the model, ignores the key.
function assertRecordedDigests(folder) {
  const json = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8'));
  for (const group of json.weightsManifest) {
    assert.ok(Array.isArray(group.sha256), `no sha256 in ${folder}/model.json`);
    assert.strictEqual(group.sha256.length, group.paths.length);
    group.paths.forEach((p, i) => {
      const actual = crypto.createHash('sha256')
                         .update(fs.readFileSync(path.join(folder, p))).digest('hex');
      assert.strictEqual(group.sha256[i], actual, `${folder}/${p}`);
    });
  }
}

async function roundTrip(server, name, seed, saveOptions, loadOptions) {
  const model = makeModel(seed);
  const target = saveOptions ? tf.io.http(`${server.url}/models/${name}`, saveOptions) :
                               `${server.url}/models/${name}`;
  const result = await model.save(target);
  assert.ok(result.responses[0].ok, `save status ${result.responses[0].status}`);
  const body = await result.responses[0].json();
  assert.strictEqual(body.name, name);
  assert.strictEqual(
      body.modelArtifactsInfo.weightDataBytes, result.modelArtifactsInfo.weightDataBytes);
  const loaded = await tf.loadLayersModel(`${server.url}/models/${name}/model.json`, loadOptions);
  await checkSame(model, loaded, `${server.url}/models/${name}`);
  return {model, status: result.responses[0].status};
}

async function main() {
  const stowage = serve.arg('--stowage');
  tf = await common.loadTf();
  const dir = serve.tempDir('stowage-serve-node-');
  try {
    // file://, one weights file.
    const fileStore = path.join(dir, 'store');
    let server = await serve.startServe(stowage, ['--store', `file://${fileStore}`, '--create']);
    const first = await roundTrip(server, 'mlp', 1);
    assert.strictEqual(first.status, 201);
    assert.deepStrictEqual(
        fs.readdirSync(path.join(fileStore, 'mlp')).sort(), ['model.json', 'weights.bin']);
    assert.match(serve.verify(stowage, `file://${fileStore}/mlp`), /^OK /);
    assertRecordedDigests(path.join(fileStore, 'mlp'));
    // PUT replaces it, through tf.io.http's requestInit.
    const put = await roundTrip(server, 'mlp', 2, {requestInit: {method: 'PUT'}});
    assert.strictEqual(put.status, 200);
    // A nested name; the list shows both.
    await roundTrip(server, 'team/mlp-v2', 3);
    const listed = await (await fetch(`${server.url}/models`)).json();
    assert.deepStrictEqual(listed.models.map((m) => m.name), ['mlp', 'team/mlp-v2']);
    await serve.stopServe(server);
    assert.ok(server.log.some((l) => l.includes('"POST /models/mlp" 201')), server.log.join('\n'));
    assert.ok(server.log.some((l) => l.includes('"GET /models/mlp/weights.bin" 200')));

    // file:// in 64 KiB shards: TF.js fetches every shard of the stored model,
    // all at once, a connection each (Node's fetch has no per-host limit).
    // With a per-client cap of 4 the others wait for a connection to end,
    // rather than getting a 503 that TF.js would take for the shard's bytes.
    const sharded = path.join(dir, 'sharded');
    server = await serve.startServe(stowage, [
      '--store', `file://${sharded}`, '--create', '-o', 'shard_size=65536', '--json',
      '--max-connections-per-client', '4'
    ]);
    await roundTrip(server, 'mlp', 4);
    await serve.stopServe(server);
    const shards = fs.readdirSync(path.join(sharded, 'mlp')).filter((f) => f.endsWith('.bin'));
    assert.ok(shards.length > 10, `expected many shards, got ${shards}`);
    const fetched = server.log.map((l) => JSON.parse(l))
                        .filter((r) => r.method === 'GET' && r.path.endsWith('.bin'));
    assert.strictEqual(fetched.length, shards.length, 'one GET per shard');
    assert.ok(fetched.every((r) => r.status === 200), 'every shard answered 200');
    assert.match(serve.verify(stowage, `file://${sharded}/mlp`), /^OK /);
    assertRecordedDigests(path.join(sharded, 'mlp'));

    // memory://: model.json rendered in TF.js's http layout, one weights file.
    server = await serve.startServe(stowage, ['--store', 'memory://interop']);
    await roundTrip(server, 'mlp', 5);
    const served = await (await fetch(`${server.url}/models/mlp/model.json`)).json();
    assert.deepStrictEqual(served.weightsManifest.map((g) => g.paths), [['model.weights.bin']]);
    await serve.stopServe(server);

    // A bearer token for writes and reads.
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'interop-token-42\n');
    server = await serve.startServe(stowage, [
      '--store', `file://${path.join(dir, 'guarded')}`, '--create', '--token-file', tokenFile,
      '--auth-reads'
    ]);
    await assert.rejects(
        makeModel(6).save(`${server.url}/models/g`), /failed due to HTTP response status 401/);
    const auth = {headers: {Authorization: 'Bearer interop-token-42'}};
    await roundTrip(server, 'g', 6, {requestInit: auth}, {requestInit: auth});
    await assert.rejects(
        tf.loadLayersModel(`${server.url}/models/g/model.json`), /failed with status code 401/);
    await serve.stopServe(server);
    assert.ok(!server.log.some((l) => l.includes('interop-token-42')), 'the token was logged');
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
  process.stdout.write('serve_node: TF.js saved to and loaded from stowage serve: OK\n');
}

main().catch((e) => {
  process.stderr.write(`serve_node: ${e.stack || e}\n`);
  process.exit(1);
});
