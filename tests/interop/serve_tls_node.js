#!/usr/bin/env node
// Real TensorFlow.js (4.22.0 on Node's fetch) against `stowage serve
// --tls-cert --tls-key`, with a test CA made at test time by
// cli/serve/make_test_certs.sh (the openssl command):
//   * Node trusts the CA only through NODE_EXTRA_CA_CERTS, which it reads at
//     start: this script runs itself again with it set (--with-ca);
//   * without the CA, TF.js's load fails on the certificate;
//   * with it, model.save('https://127.0.0.1:PORT/models/m') uploads, and
//     tf.loadLayersModel('https://localhost:PORT/models/m/model.json') loads
//     the same weights and predictions back; SIGTERM ends serve with 0.
// Usage: node serve_tls_node.js --stowage PATH
'use strict';

const assert = require('assert');
const {spawnSync} = require('child_process');
const fs = require('fs');
const path = require('path');
const common = require('./common');
const serve = require('./serve_common');

const kMakeCerts = path.join(__dirname, '..', '..', 'cli', 'serve', 'make_test_certs.sh');

function bits(typed) {
  return Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('hex');
}

function makeModel(tf) {
  const model = tf.sequential();
  model.add(tf.layers.dense({units: 64, inputShape: [4], activation: 'relu'}));
  model.add(tf.layers.dense({units: 2}));
  // Seeded values: the same on every run.
  let state = 7;
  const values = model.getWeights().map((w) => {
    const data = new Float32Array(w.size);
    for (let i = 0; i < data.length; ++i) {
      state = (state * 1103515245 + 12345) >>> 0;
      data[i] = state / 4294967296 - 0.5;
    }
    return tf.tensor(data, w.shape, 'float32');
  });
  model.setWeights(values);
  model.setUserDefinedMetadata({tls: true});
  return model;
}

async function startTls(stowage, dir, certs) {
  const server = await serve.startServe(stowage, [
    '--store', `file://${path.join(dir, 'store')}`, '--create', '--tls-cert',
    path.join(certs, 'server.pem'), '--tls-key', path.join(certs, 'server.key')
  ]);
  server.url = `https://127.0.0.1:${server.port}`;
  return server;
}

// The TF.js half, in a process started with NODE_EXTRA_CA_CERTS.
async function withCa(stowage, dir, certs) {
  const tf = await common.loadTf();
  const server = await startTls(stowage, dir, certs);
  const model = makeModel(tf);
  const saved = await model.save(`${server.url}/models/m`);
  assert.strictEqual(saved.responses[0].status, 201);
  const loaded =
      await tf.loadLayersModel(`https://localhost:${server.port}/models/m/model.json`);
  const a = model.getWeights();
  const b = loaded.getWeights();
  assert.strictEqual(b.length, a.length);
  a.forEach((w, i) => assert.strictEqual(bits(b[i].dataSync()), bits(w.dataSync()), w.name));
  const x = tf.tensor2d([[1, -2, 0.5, 3]]);
  assert.strictEqual(bits(loaded.predict(x).dataSync()), bits(model.predict(x).dataSync()));
  assert.deepStrictEqual(loaded.getUserDefinedMetadata(), {tls: true});
  await serve.stopServe(server);
  assert.ok(server.log.some((l) => l.includes('"POST /models/m" 201')), server.log.join('\n'));
  assert.ok(server.log.some((l) => l.includes('"GET /models/m/weights.bin" 200')));
}

// Without the CA: the load fails on the certificate.
async function withoutCa(stowage, dir, certs) {
  const tf = await common.loadTf();
  const server = await startTls(stowage, dir, certs);
  let failure = null;
  try {
    await tf.loadLayersModel(`${server.url}/models/m/model.json`);
  } catch (e) {
    failure = e;
  }
  assert.ok(failure, 'TF.js loaded over https from a CA it does not trust');
  assert.match(String(failure.cause && failure.cause.code), /^UNABLE_TO_VERIFY_LEAF_SIGNATURE$/,
               String(failure.stack));
  await serve.stopServe(server);
  assert.strictEqual(server.log.length, 0, 'a request got through: ' + server.log.join('\n'));
}

async function main() {
  const stowage = serve.arg('--stowage');
  if (process.argv.includes('--with-ca')) {
    await withCa(stowage, serve.arg('--dir'), serve.arg('--certs'));
    return;
  }
  const dir = serve.tempDir('stowage-serve-tls-node-');
  try {
    const certs = path.join(dir, 'certs');
    const made = spawnSync('/bin/sh', [kMakeCerts, certs], {encoding: 'utf8'});
    assert.strictEqual(made.status, 0, `make_test_certs.sh: ${made.stderr}`);
    await withoutCa(stowage, dir, certs);
    const child = spawnSync(
        process.execPath,
        [__filename, '--with-ca', '--stowage', stowage, '--dir', dir, '--certs', certs], {
          stdio: 'inherit',
          env: {...process.env, NODE_EXTRA_CA_CERTS: path.join(certs, 'ca.pem')}
        });
    assert.strictEqual(child.status, 0, 'the TF.js half with the test CA failed');
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
  process.stdout.write('serve_tls_node: TF.js saved to and loaded from https serve: OK\n');
}

main().catch((e) => {
  process.stderr.write(`serve_tls_node: ${e.stack || e}\n`);
  process.exit(1);
});
