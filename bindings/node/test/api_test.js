// The rest of the API with real stores: copy, move, list, remove, info,
// plugins, configure; progress; the event loop running during a load; the
// SaveResult sizes TF.js computes, edge cases included; and the weights
// crossing between JavaScript and stowage without copies (and with copies
// in worker_threads, where they must outlive nothing).
// Run with --expose-gc.
'use strict';

const {test, before, after} = require('node:test');
const fs = require('fs');
const http = require('http');
const path = require('path');
const {Worker} = require('worker_threads');
const h = require('./helpers');
const {assert, stowage} = h;

let tf;
let moto;
let work;

before(async () => {
  assert.strictEqual(typeof global.gc, 'function', 'run with node --expose-gc');
  tf = await h.loadTf();
  work = h.tempDir();
  moto = await h.startMoto();
});

after(async () => {
  if (moto) await moto.stop();
});

function model(id) {
  return h.interopModels().find((x) => x.id === id);
}

async function collect() {
  for (let i = 0; i < 3; ++i) {
    global.gc();
    await new Promise((res) => setImmediate(res));  // pin releases arrive through the loop
  }
}

function withoutDate(info) {
  const {dateSaved, ...rest} = info;
  return rest;
}

test('copy, list, info, move and remove across schemes, in TF.js\'s shapes', async () => {
  const src = h.fileUrl(model('conv/converter').model_json);
  const fractions = [];
  const copied = await stowage.copy(src, 'memory://api/conv', {onProgress: (f) => fractions.push(f)});
  assert.ok(copied.dateSaved instanceof Date);
  assert.deepStrictEqual(Object.keys(copied),
                         ['dateSaved', 'modelTopologyType', 'modelTopologyBytes',
                          'weightSpecsBytes', 'weightDataBytes']);
  assert.ok(fractions.length >= 1 && fractions.at(-1) === 1, `${fractions}`);
  assert.deepStrictEqual(fractions, [...fractions].sort((a, b) => a - b), 'progress went back');

  await stowage.copy('memory://api/conv', 's3://models/api/conv',
                     {destinationOptions: {...moto.options, shard_size: 1000}});
  await stowage.copy('memory://api/conv', 'memory://api/conv2');
  const listed = await stowage.list('memory://api');
  assert.deepStrictEqual(Object.keys(listed).sort(), ['memory://api/conv', 'memory://api/conv2']);
  const entry = listed['memory://api/conv'];
  assert.ok(entry.dateSaved instanceof Date);
  assert.deepStrictEqual(withoutDate(entry), withoutDate(copied));

  const info = await stowage.info('s3://models/api/conv/model.json', moto.options);
  assert.strictEqual(info.url, 's3://models/api/conv/model.json');
  assert.strictEqual(info.format, 'layers-model');
  assert.strictEqual(info.modelTopology.model_config.class_name, 'Sequential');  // Keras form
  assert.deepStrictEqual(info.modelArtifactsInfo, withoutDate(copied));
  const expected = require(model('conv/converter').expected);
  assert.strictEqual(info.weightBytes, expected.weight_bytes);
  assert.strictEqual(info.weightSpecs.length, expected.weights.length);
  assert.ok(info.weightFiles.length > 1, 'shards of 1000 bytes');
  assert.ok(info.weightFiles.every((f) => f.bytes <= 1000 && /shard/.test(f.path)));
  assert.strictEqual(info.weightFiles.reduce((n, f) => n + f.bytes, 0), expected.weight_bytes);
  assert.strictEqual(info.weightsManifest[0].paths.length, info.weightFiles.length);

  const moved = await stowage.move('s3://models/api/conv/model.json', h.fileUrl(`${work}/moved`),
                                   {sourceOptions: moto.options});
  assert.strictEqual(moved.weightDataBytes, expected.weight_bytes);
  // (moto 5.2.1 refuses signed listings of a prefix, so no s3:// list here.)
  await assert.rejects(stowage.io('s3://models/api/conv/model.json', moto.options).load(),
                       {code: 'NOT_FOUND'});
  const files = await stowage.list(h.fileUrl(work));
  assert.ok(h.fileUrl(`${work}/moved/model.json`) in files, Object.keys(files).join());

  const removed = await stowage.remove('memory://api/conv');
  assert.deepStrictEqual(withoutDate(removed), withoutDate(copied));
  await assert.rejects(stowage.remove('memory://api/conv'), {code: 'NOT_FOUND'});
  await assert.rejects(stowage.copy(src, src), {code: 'INVALID_ARGUMENT'});
  await assert.rejects(stowage.copy(src, 'memory://x', {shard_size: 1}),
                       {code: 'INVALID_ARGUMENT', message: /unknown option 'shard_size'/});
  await assert.rejects(stowage.list('http://127.0.0.1:1/'), {code: 'UNIMPLEMENTED'});

  // The browser stores take their profile as an option.
  const profile = {profile: `${work}/profile`};
  await stowage.copy(src, 'indexeddb://a/conv', {destinationOptions: profile});
  assert.deepStrictEqual(Object.keys(await stowage.list('indexeddb://', profile)),
                         ['indexeddb://a/conv']);
});

test('list() with no URL lists the default locations; move reads back from verifyUrl', async () => {
  const src = h.fileUrl(model('dense/node').model_json);
  await stowage.copy(src, 'memory://defaults/dense');
  const all = await stowage.list();
  assert.ok('memory://defaults/dense' in all, Object.keys(all).join());
  assert.ok(all['memory://defaults/dense'].dateSaved instanceof Date);
  for (const url of Object.keys(all)) {
    assert.match(url, /^(localstorage|indexeddb|memory):\/\//, 'not a default location');
  }
  await assert.rejects(stowage.list(undefined, {profile: `${work}/profile`}), TypeError);

  // verifyUrl names where the copy is read back from: a wrong one fails the
  // move and keeps the source; the right one completes it.
  const dst = h.fileUrl(`${work}/verified`);
  await assert.rejects(
      stowage.move('memory://defaults/dense', dst, {verifyUrl: h.fileUrl(`${work}/elsewhere/model.json`)}),
      {code: 'NOT_FOUND', message: /elsewhere/});
  assert.strictEqual((await stowage.io('memory://defaults/dense').load()).format, 'layers-model');
  const moved = await stowage.move('memory://defaults/dense', dst,
                                   {verifyUrl: `${dst}/model.json`});
  assert.ok(moved.weightDataBytes > 0);
  await assert.rejects(stowage.io('memory://defaults/dense').load(), {code: 'NOT_FOUND'});
  await assert.rejects(stowage.move('memory://x', dst, {verifyUrl: 3}), TypeError);
});

test('plugins() and configure() with an object and with a file', async () => {
  const plugins = await stowage.plugins();
  const byName = Object.fromEntries(plugins.map((p) => [p.name, p]));
  for (const name of ['file', 'memory', 'http', 's3', 'browser']) assert.ok(byName[name], name);
  assert.deepStrictEqual(byName.http.schemes, ['http', 'https']);
  assert.ok(byName.file.library.endsWith('libstowage_file.so'));

  const src = h.fileUrl(model('dense/node').model_json);
  await stowage.copy(src, h.fileUrl(`${work}/aliased/dense`));
  const file = (await stowage.plugins()).find((p) => p.name === 'file');
  assert.strictEqual(file.loaded, true);
  assert.match(file.abi, /^1\.\d+$/);
  assert.ok(file.capabilities.includes('save') && file.capabilities.includes('load'));
  await stowage.configure({aliases: {zoo: h.fileUrl(`${work}/aliased`)}});
  const a = await stowage.io('zoo://dense/model.json').load();
  assert.strictEqual(a.format, 'layers-model');

  const config = `${work}/config.json`;
  fs.writeFileSync(config, JSON.stringify({aliases: {zoo2: h.fileUrl(`${work}/aliased`)}}));
  await stowage.configure(config);
  assert.strictEqual((await stowage.io('zoo2://dense/model.json').load()).format, 'layers-model');

  await assert.rejects(stowage.configure({aliasez: {}}), {code: 'INVALID_ARGUMENT', message: /aliasez/});
  await assert.rejects(stowage.configure(`${work}/none.json`), {code: 'NOT_FOUND', message: /none\.json/});
  await assert.rejects(stowage.configure(42), TypeError);
});

// Weights sent in chunks, each only after the event loop has turned: the
// load can only finish if the loop runs while it is in flight.
test('the event loop runs while a load is in flight; progress ends at 1 before it resolves', async () => {
  const chunks = 16;
  const bytes = chunks * 65536;
  let turns = 0;
  const server = http.createServer((req, res) => {
    if (req.url.endsWith('model.json')) {
      res.end(JSON.stringify({
        format: 'layers-model',
        weightsManifest: [
          {paths: ['a.bin', 'b.bin'], weights: [{name: 'w', shape: [bytes / 4], dtype: 'float32'}]},
        ],
      }));
      return;
    }
    res.writeHead(200, {'content-length': bytes / 2});
    let sent = 0;
    const next = () => {
      const seen = turns;
      setImmediate(function wait() {
        if (turns === seen) return setImmediate(wait);
        res.write(Buffer.alloc(65536, 7));
        if (++sent === chunks / 2) return res.end();
        next();
      });
    };
    next();
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const fractions = [];
  let resolved = false;
  const load = stowage.io(`http://127.0.0.1:${server.address().port}/m/model.json`, {
    onProgress: (f) => {
      assert.ok(!resolved);
      fractions.push(f);
    },
  }).load().then((a) => {
    resolved = true;
    return a;
  });
  const ticker = setInterval(() => ++turns, 1);
  const a = await load;
  clearInterval(ticker);
  server.close();
  // Each file's chunks wait for a fresh turn each.
  assert.ok(turns >= chunks / 2, `the loop turned ${turns} times`);
  assert.strictEqual(a.weightData.length, 2);
  assert.ok(h.weightBytes(a.weightData).equals(Buffer.alloc(bytes, 7)));
  assert.strictEqual(fractions.at(-1), 1);
  assert.ok(fractions.length >= 3, `${fractions}`);
  for (let i = 1; i < fractions.length; ++i) assert.ok(fractions[i] > fractions[i - 1]);
});

test('SaveResult sizes equal TF.js\'s, also for [] and absent weightData and non-ASCII', async () => {
  const quantized = await stowage.io(h.fileUrl(model('quantized/converter').model_json)).load();
  const cases = {
    quantized,
    noWeightData: {modelTopology: {a: 'é正'}, format: 'x', weightSpecs: []},
    emptyArray: {modelTopology: {a: 1}, weightSpecs: [], weightData: []},
    emptyBuffer: {modelTopology: {a: 1}, weightSpecs: [], weightData: new ArrayBuffer(0)},
    metadata: {
      modelTopology: {'кошка': [1e21, 1e-7, 0.1]},
      userDefinedMetadata: {'犬': 'x'},
      weightSpecs: [{name: 'w', shape: [2], dtype: 'float32'}],
      weightData: new Float32Array([1, 2]).buffer,
    },
  };
  for (const [name, artifacts] of Object.entries(cases)) {
    const result = await stowage.io(`memory://sizes/${name}`).save(artifacts);
    assert.deepStrictEqual(withoutDate(result.modelArtifactsInfo),
                           withoutDate(tf.io.getModelArtifactsInfoForJSON(artifacts)), name);
  }
  const info = (await stowage.io('memory://s').save(cases.emptyArray)).modelArtifactsInfo;
  assert.ok('weightDataBytes' in info && info.weightDataBytes === undefined);
});

test('loaded weights are external ArrayBuffers over stowage\'s buffers, freed by the GC', async () => {
  await collect();
  const base = stowage.diagnostics();
  const m = model('conv/converter');
  let a = await stowage.io(h.fileUrl(m.model_json)).load();
  const paths = JSON.parse(fs.readFileSync(m.model_json, 'utf8')).weightsManifest[0].paths;
  const d = stowage.diagnostics();
  assert.strictEqual(d.externalBuffers - base.externalBuffers, paths.length);
  assert.strictEqual(d.externalBytes - base.externalBytes, require(m.expected).weight_bytes);
  // A stray write does not crash (the mapping is private) nor reach the file.
  const before = fs.readFileSync(path.join(path.dirname(m.model_json), paths[0]));
  new Uint8Array(a.weightData[0]).fill(0xab);
  assert.ok(fs.readFileSync(path.join(path.dirname(m.model_json), paths[0])).equals(before));
  a = null;
  await collect();
  assert.strictEqual(stowage.diagnostics().externalBuffers, base.externalBuffers);
  assert.strictEqual(stowage.diagnostics().externalBytes, base.externalBytes);
});

test('saved ArrayBuffers are shared without a copy and pinned while memory:// keeps them', async () => {
  await collect();
  const base = stowage.diagnostics();
  let data = new Float32Array([1, 2, 3, 4]).buffer;
  const weak = new WeakRef(data);
  const artifacts = {modelTopology: {}, weightSpecs: [{name: 'w', shape: [4], dtype: 'float32'}], weightData: data};
  await stowage.io('memory://shared').save(artifacts);
  assert.strictEqual(stowage.diagnostics().pinnedBuffers, base.pinnedBuffers + 1);
  // The store holds the very bytes: a change made after the save shows in a load.
  new Float32Array(data)[0] = 42;
  let loaded = await stowage.io('memory://shared').load();
  assert.strictEqual(new Float32Array(loaded.weightData[0])[0], 42);
  // Two loads at once are two ArrayBuffers over the same bytes.
  let second = await stowage.io('memory://shared').load();
  new Float32Array(second.weightData[0])[1] = -7;
  assert.strictEqual(new Float32Array(loaded.weightData[0])[1], -7);
  assert.strictEqual(new Float32Array(data)[1], -7);
  second = null;
  await stowage.remove('memory://shared');
  assert.strictEqual(stowage.diagnostics().pinnedBuffers, base.pinnedBuffers + 1,
                     'the loaded ArrayBuffer still uses the bytes');
  loaded = null;
  data = null;
  artifacts.weightData = null;
  await collect();
  assert.strictEqual(stowage.diagnostics().pinnedBuffers, base.pinnedBuffers);
  assert.strictEqual(weak.deref(), undefined, 'the saved ArrayBuffer was never let go');

  // A save that does not keep the buffers lets go of them when it ends.
  let unpinned = new ArrayBuffer(4);
  const weak2 = new WeakRef(unpinned);
  await stowage.io(h.fileUrl(`${work}/unpinned`)).save(
      {modelTopology: {}, weightSpecs: [{name: 'w', shape: [1], dtype: 'float32'}], weightData: unpinned});
  assert.strictEqual(stowage.diagnostics().pinnedBuffers, base.pinnedBuffers);
  unpinned = null;
  await collect();
  assert.strictEqual(weak2.deref(), undefined, 'the saved ArrayBuffer was never let go');
});

test('in worker_threads saves copy, so memory:// outlives the Worker safely', async () => {
  const script = `
    const {parentPort} = require('worker_threads');
    const stowage = require(${JSON.stringify(path.join(h.sourceDir, 'bindings', 'node'))});
    (async () => {
      const data = new Float32Array([5, 6, 7]).buffer;
      await stowage.io('memory://from-worker').save(
          {modelTopology: {w: true}, weightSpecs: [{name: 'w', shape: [3], dtype: 'float32'}], weightData: data});
      new Float32Array(data)[0] = -1;  // after the save: must not reach the store
      const back = await stowage.io('memory://from-worker').load();
      parentPort.postMessage({first: new Float32Array(back.weightData[0])[0], pins: stowage.diagnostics().pinnedBuffers});
    })().catch((e) => parentPort.postMessage({error: e.stack}));`;
  const worker = new Worker(script, {eval: true, env: process.env});
  const message = await new Promise((res, rej) => {
    worker.once('message', res);
    worker.once('error', rej);
  });
  assert.strictEqual(message.error, undefined, message.error);
  assert.strictEqual(message.first, 5);
  await worker.terminate();
  await collect();
  // The Worker and its ArrayBuffers are gone; the copy in memory:// is not.
  const a = await stowage.io('memory://from-worker').load();
  assert.deepStrictEqual(Array.from(new Float32Array(a.weightData[0])), [5, 6, 7]);
  assert.deepStrictEqual(a.modelTopology, {w: true});
});

test('many calls at once', async () => {
  const url = h.fileUrl(model('recurrent/converter').model_json);
  const want = h.weightBytes((await stowage.io(url).load()).weightData);
  const all = await Promise.all(Array.from({length: 24}, () => stowage.io(url).load()));
  for (const a of all) assert.ok(h.weightBytes(a.weightData).equals(want));
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
});
