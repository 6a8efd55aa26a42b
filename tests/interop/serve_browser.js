#!/usr/bin/env node
// Real TensorFlow.js in headless Chromium against `stowage serve`, across
// origins. One server (--static) serves the test page and tf.min.js; the
// model API is another server on another port, so every request the page
// makes is cross-origin:
//   * model.save('http://127.0.0.1:API/models/b') sends Chromium's own
//     multipart body; without the token the 401 is readable (CORS headers on
//     errors too); with it (an Authorization header, so a preflight first)
//     the model is stored, tf.loadLayersModel loads it back and predicts
//     the same, bit for bit; the stored folder passes `stowage verify`;
//   * a server that allows no origin: the browser refuses to hand the page
//     its answers.
// Usage: node serve_browser.js --stowage PATH [--chromium /usr/bin/chromium]
// Exits 77 (CTest: skipped), saying so, only when Chromium is not installed;
// under CI=true that is a failure (exit status 1).
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const serve = require('./serve_common');
const {skipOrFail} = require('./skip');

const kPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>stowage serve browser test</title>
<script src="tf.min.js"></script></head>
<body>stowage serve browser test</body></html>
`;

// Runs in the page: builds a seeded model, saves it, loads it back.
async function inPage({api, closed, token}) {
  await tf.setBackend('cpu');
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  const model = tf.sequential();
  model.add(tf.layers.dense({units: 64, inputShape: [4], activation: 'relu'}));
  model.add(tf.layers.dense({units: 2}));
  model.setWeights(model.getWeights().map((w) => {
    const data = new Float32Array(w.size);
    for (let i = 0; i < data.length; ++i) data[i] = rand();
    return tf.tensor(data, w.shape);
  }));
  model.setUserDefinedMetadata({from: 'chromium'});
  const x = tf.tensor2d([[1, 2, 3, 4], [0.5, -1, 0, 2]]);
  const out = {before: Array.from(model.predict(x).dataSync())};

  try {
    await model.save(`${api}/models/b`);
    out.withoutToken = 'saved';
  } catch (e) {
    out.withoutToken = e.message;
  }
  const saved = await model.save(
      tf.io.http(`${api}/models/b`, {requestInit: {headers: {Authorization: `Bearer ${token}`}}}));
  out.status = saved.responses[0].status;
  out.savedBody = await saved.responses[0].json();
  const loaded = await tf.loadLayersModel(`${api}/models/b/model.json`);
  out.after = Array.from(loaded.predict(x).dataSync());
  out.metadata = loaded.getUserDefinedMetadata();

  try {
    await model.save(`${closed}/models/c`);
    out.closedSave = 'saved';
  } catch (e) {
    out.closedSave = `${e.name}: ${e.message}`;
  }
  return out;
}

async function main() {
  const stowage = serve.arg('--stowage');
  const chromiumPath = serve.arg('--chromium', '/usr/bin/chromium');
  if (!fs.existsSync(chromiumPath)) {
    skipOrFail(
        `Chromium is not installed at ${chromiumPath}; the browser test of stowage serve did ` +
        'not run. tests/setup.sh installs it (Debian package chromium).');
  }
  const {chromium} = require('playwright-core');
  const tfMin = require.resolve('@tensorflow/tfjs/dist/tf.min.js');

  const dir = serve.tempDir('stowage-serve-browser-');
  const servers = [];
  let browser = null;
  try {
    const www = path.join(dir, 'www');
    fs.mkdirSync(www);
    fs.writeFileSync(path.join(www, 'index.html'), kPage);
    fs.copyFileSync(tfMin, path.join(www, 'tf.min.js'));
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'browser-token-7');
    const store = path.join(dir, 'store');

    const page = await serve.startServe(stowage, ['--store', 'memory://page', '--static', www]);
    servers.push(page);
    const api = await serve.startServe(
        stowage,
        ['--store', `file://${store}`, '--create', '--cors-origin', page.url, '--token-file', tokenFile]);
    servers.push(api);
    const closed = await serve.startServe(stowage, ['--store', 'memory://closed']);
    servers.push(closed);

    const args = ['--disable-dev-shm-usage'];
    if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
    browser = await chromium.launch({executablePath: chromiumPath, headless: true, args});
    const tab = await browser.newPage();
    tab.on('console', (m) => {
      if (m.type() === 'error') process.stderr.write(`page console: ${m.text()}\n`);
    });
    await tab.goto(`${page.url}/`);
    await tab.waitForFunction(() => typeof tf !== 'undefined' && tf.version.tfjs === '4.22.0');
    const out =
        await tab.evaluate(inPage, {api: api.url, closed: closed.url, token: 'browser-token-7'});

    assert.match(out.withoutToken, /failed due to HTTP response status 401/);
    assert.strictEqual(out.status, 201);
    assert.strictEqual(out.savedBody.name, 'b');
    assert.strictEqual(out.after.length, 4);
    assert.deepStrictEqual(out.after, out.before, 'predictions after the round trip differ');
    assert.deepStrictEqual(out.metadata, {from: 'chromium'});
    assert.match(out.closedSave, /TypeError: Failed to fetch/);
    assert.match(serve.verify(stowage, `file://${store}/b`), /^OK /);

    await browser.close();
    browser = null;
    for (const s of servers.splice(0)) await serve.stopServe(s);
    const log = api.log.join('\n');
    assert.match(log, /"POST \/models\/b" 401/);
    assert.match(log, /"OPTIONS \/models\/b" 204/);  // the preflight for Authorization
    assert.match(log, /"POST \/models\/b" 201/);
    assert.match(log, /"GET \/models\/b\/weights.bin" 200/);
    assert.ok(!log.includes('browser-token-7'), 'the token was logged');
  } finally {
    if (browser) await browser.close();
    for (const s of servers) s.proc.kill('SIGKILL');
    fs.rmSync(dir, {recursive: true, force: true});
  }
  process.stdout.write(
      'serve_browser: Chromium saved to and loaded from stowage serve across origins: OK\n');
}

main().catch((e) => {
  process.stderr.write(`serve_browser: ${e.stack || e}\n`);
  process.exit(1);
});
