// Failures reach JavaScript as StowageErrors with the host's code,
// retryable flag and message (URL named, secrets redacted), also through
// tf.loadLayersModel: a missing model on every scheme, a truncated weight
// file, a wrong S3 secret, bad options. An aborted load rejects with
// CANCELLED only once its thread has ended, and leaves nothing running.
'use strict';

const {test, before, after} = require('node:test');
const fs = require('fs');
const http = require('http');
const path = require('path');
const h = require('./helpers');
const {assert, stowage} = h;

let tf;
let moto;
let work;

before(async () => {
  tf = await h.loadTf();
  work = h.tempDir();
  moto = await h.startMoto();
});

after(async () => {
  if (moto) await moto.stop();
});

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('the call succeeded');
}

// A deadlock guard, not a timing check: a call that does not stop when told
// would otherwise hang the test until CTest kills it.
function within(promise, what, seconds = 60) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${seconds} s`)),
                       seconds * 1000);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function checkError(e, code, {url, retryable = false, contains = []} = {}) {
  assert.ok(e instanceof stowage.StowageError, `not a StowageError: ${e && e.stack}`);
  assert.ok(e instanceof Error);
  assert.strictEqual(e.code, code, `code of: ${e.message}`);
  assert.strictEqual(e.retryable, retryable, `retryable of: ${e.message}`);
  if (url !== undefined) assert.strictEqual(e.url, url);
  for (const text of contains) assert.ok(e.message.includes(text), `"${text}" not in: ${e.message}`);
}

function layersModel(id) {
  const m = h.interopModels().find((x) => x.id === id);
  assert.ok(m, `no interop model ${id}`);
  return m;
}

test('a missing model is NOT_FOUND on every scheme, also through tf.loadLayersModel', async () => {
  const profile = {profile: `${work}/profile`};
  const web = await h.startServe(h.fileUrl(`${work}/served`), ['--create']);
  try {
    const cases = [
      [h.fileUrl(`${work}/none/model.json`), undefined, `Path ${work}/none/model.json does not exist`],
      ['memory://none', undefined, 'memory://none'],
      ['s3://models/none/model.json', moto.options, 's3://models/none/model.json'],
      [`${web.url}/models/none/model.json`, undefined, `${web.url}/models/none/model.json`],
      ['localstorage://none', profile, 'none'],
      ['indexeddb://none', profile, 'none'],
    ];
    for (const [url, options, text] of cases) {
      checkError(await rejection(stowage.io(url, options).load()), 'NOT_FOUND',
                 {url, contains: [text]});
      const viaTf = await rejection(tf.loadLayersModel(stowage.io(url, options)));
      checkError(viaTf, 'NOT_FOUND', {url});
    }
    checkError(await rejection(stowage.io('nosuch://x').load()), 'NOT_FOUND',
               {contains: ['nosuch', 'Available schemes']});
  } finally {
    await web.stop();
  }
});

test('a truncated weight file is DATA_LOSS naming it, over file:// and http://', async () => {
  const m = layersModel('conv/converter');
  const dir = `${work}/truncated`;
  fs.cpSync(path.dirname(m.model_json), dir, {recursive: true});
  const manifest = JSON.parse(fs.readFileSync(`${dir}/model.json`, 'utf8')).weightsManifest;
  const shard = manifest[0].paths[1];
  const size = fs.statSync(`${dir}/${shard}`).size;
  fs.truncateSync(`${dir}/${shard}`, size - 10);

  const fileUrl = h.fileUrl(`${dir}/model.json`);
  const e = await rejection(tf.loadLayersModel(stowage.io(fileUrl)));
  const need = manifest[0].paths.reduce((n, p) => n + fs.statSync(`${dir}/${p}`).size, 10);
  checkError(e, 'DATA_LOSS', {
    url: fileUrl,
    contains: [`${dir}/${shard}`, `${size - 10} bytes`, `needs ${need} bytes`],
  });

  const web = await h.startStatic(work);
  try {
    const url = `${web.url}/truncated/model.json`;
    checkError(await rejection(stowage.io(url).load()), 'DATA_LOSS', {url, contains: [shard]});
  } finally {
    await web.stop();
  }
});

test('a wrong S3 secret is PERMISSION_DENIED and the secret appears nowhere', async () => {
  const m = layersModel('dense/node');
  await stowage.copy(h.fileUrl(m.model_json), 's3://models/secret-test',
                     {destinationOptions: moto.options});
  const secret = 'not-the-secret-7f3a9c';
  const url = 's3://models/secret-test/model.json';
  const e = await rejection(
      tf.loadLayersModel(stowage.io(url, {...moto.options, secret_access_key: secret})));
  checkError(e, 'PERMISSION_DENIED', {url, contains: [url, 'SignatureDoesNotMatch']});
  assert.ok(!e.message.includes(secret) && !e.stack.includes(secret), 'the secret leaked');
  assert.ok(!e.message.includes(moto.options.secret_access_key));
  // With the right secret the same model loads.
  const model = await tf.loadLayersModel(stowage.io(url, moto.options));
  h.checkPredictions(tf, model, m.predictions, 'dense after the failed attempt');
  model.dispose();
});

test('passwords in URLs are redacted; bad options are INVALID_ARGUMENT', async () => {
  const server = http.createServer((req, res) => res.writeHead(404).end());
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const url = `http://user:hunter2@127.0.0.1:${server.address().port}/m/model.json`;
  try {
    const e = await rejection(stowage.io(url).load());
    checkError(e, 'NOT_FOUND', {contains: ['REDACTED']});
    assert.ok(!e.message.includes('hunter2'));
  } finally {
    server.close();
  }
  checkError(await rejection(stowage.io(h.fileUrl(work), {nope: 1}).load()), 'INVALID_ARGUMENT',
             {contains: ['nope', 'shard_size']});
  assert.throws(() => stowage.io(h.fileUrl(work), {weightUrlConverter: async (p) => p}),
                (e) => e.code === 'INVALID_ARGUMENT' && /weightUrlConverter/.test(e.message));
  assert.throws(() => stowage.io(h.fileUrl(work), {onProgress: 3}), TypeError);
  assert.throws(() => stowage.io(''), TypeError);
  checkError(await rejection(stowage.io(h.fileUrl(work)).save({modelTopology: new ArrayBuffer(4)})),
             'INVALID_ARGUMENT', {contains: ['binary']});
  await assert.rejects(stowage.io(h.fileUrl(work)).save({weightData: new Uint8Array(4)}),
                       /weightData must be an ArrayBuffer/);
});

// A server in this process that sends model.json and part of a weight file,
// then stalls until the client goes away. It can only answer at all because
// the load does not block the event loop.
async function stallingServer(bytes) {
  const state = {closed: null, sent: 0};
  const modelJson = JSON.stringify({
    modelTopology: {},
    format: 'layers-model',
    weightsManifest: [{paths: ['w.bin'], weights: [{name: 'w', shape: [bytes / 4], dtype: 'float32'}]}],
  });
  state.closed = new Promise((resolve) => {
    state.server = http.createServer((req, res) => {
      if (req.url.endsWith('model.json')) {
        res.writeHead(200, {'content-type': 'application/json'}).end(modelJson);
        return;
      }
      res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': bytes});
      res.write(Buffer.alloc(bytes / 2));
      state.sent += bytes / 2;
      req.socket.on('close', resolve);  // stalls: the rest never comes
    });
  });
  await new Promise((res) => state.server.listen(0, '127.0.0.1', res));
  state.url = `http://127.0.0.1:${state.server.address().port}/m/model.json`;
  return state;
}

test('an aborted load rejects with CANCELLED and leaves no work running', async () => {
  // Warm up the http plugin, so its lasting state is not counted.
  const web = await h.startStatic(path.dirname(path.dirname(layersModel('dense/node').model_json)));
  await stowage.io(`${web.url}/node/model.json`).load();
  await web.stop();
  const threadsBefore = h.threadCount();

  const slow = await stallingServer(8 << 20);
  const controller = new AbortController();
  let fractions = [];
  const load = stowage.io(slow.url, {
    signal: controller.signal,
    onProgress: (f) => {
      fractions.push(f);
      controller.abort(new Error('the user gave up'));
    },
  }).load();
  assert.strictEqual(stowage.diagnostics().activeCalls, 1);
  const e = await rejection(within(load, 'the aborted load'));
  checkError(e, 'CANCELLED', {url: slow.url});
  assert.strictEqual(e.cause.message, 'the user gave up');
  assert.ok(fractions.length >= 1 && fractions[0] > 0 && fractions[0] < 1, `${fractions}`);
  // Settled only after its thread ended: nothing of the call is left.
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
  assert.strictEqual(h.threadCount(), threadsBefore);
  await slow.closed;  // the connection was closed, not left hanging
  slow.server.close();

  // An already aborted signal: nothing starts.
  const reason = new Error('before');
  const e2 = await rejection(
      stowage.io(slow.url, {signal: AbortSignal.abort(reason)}).load());
  checkError(e2, 'CANCELLED', {contains: ['before it started']});
  assert.strictEqual(e2.cause, reason);
  assert.strictEqual(slow.sent, 4 << 20, 'the aborted-before-start load sent requests');

  // The same through tf.loadLayersModel.
  const slow2 = await stallingServer(8 << 20);
  const controller2 = new AbortController();
  const viaTf = tf.loadLayersModel(stowage.io(slow2.url, {
    signal: controller2.signal,
    onProgress: () => controller2.abort(),
  }));
  checkError(await rejection(within(viaTf, 'the aborted tf.loadLayersModel')), 'CANCELLED');
  await slow2.closed;
  slow2.server.close();
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
});

test('an onProgress that throws stops the load and rejects with what it threw', async () => {
  const slow = await stallingServer(1 << 20);
  const thrown = new RangeError('from onProgress');
  const e = await rejection(stowage.io(slow.url, {onProgress: () => {
                                         throw thrown;
                                       }}).load());
  assert.strictEqual(e, thrown);
  await slow.closed;
  slow.server.close();
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
});

test('an aborted save stops sending and rejects with CANCELLED', async () => {
  // The server reads the first bytes of the upload, then stops reading, so
  // the 16 MiB body cannot be sent whole: aborting must cut it off (once a
  // body is all sent, the save waits for the answer, since the server may
  // have stored the model).
  let received = 0;
  let closed;
  let request;
  const gone = new Promise((res) => (closed = res));
  const server = http.createServer((req) => {
    request = req;
    req.once('data', (d) => {
      received += d.length;
      req.pause();
    });
    req.socket.on('close', closed);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const controller = new AbortController();
  const saving = stowage.io(`http://127.0.0.1:${server.address().port}/upload`,
                            {signal: controller.signal}).save({
    modelTopology: {},
    weightSpecs: [{name: 'w', shape: [4 << 20], dtype: 'float32'}],
    weightData: new ArrayBuffer(16 << 20),
  });
  while (received === 0) await new Promise((res) => setTimeout(res, 5));
  controller.abort();
  checkError(await rejection(within(saving, 'the aborted save')), 'CANCELLED',
             {contains: ['cancelled']});
  assert.strictEqual(stowage.diagnostics().pinnedBuffers, 0, 'the weights are still pinned');
  request.resume();  // reading again, the server sees the connection was closed
  await gone;
  server.close();
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
});
