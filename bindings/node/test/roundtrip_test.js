// Real TensorFlow.js 4.22 with stowage.io() on every scheme: each layers
// model of the interop set (built and saved by TF.js, make_models.js) is
// loaded with tf.loadLayersModel(stowage.io('file://...')), saved with
// model.save(stowage.io(u)) and loaded back with
// tf.loadLayersModel(stowage.io(u)) for u on file:// (one file and shards),
// memory://, s3:// (moto_server with authentication, one file and shards),
// http:// (stowage serve), localstorage:// and indexeddb://. Every
// prediction is bit-equal to TF.js's on the original; the bytes and specs
// read back equal what TF.js handed to save; each SaveResult's
// modelArtifactsInfo equals tf.io.getModelArtifactsInfoForJSON of the same
// artifacts. Then cache+http:// loads every model the http target saved,
// once through the store and once offline from the cache alone.
'use strict';

const fs = require('fs');
const {test, before, after} = require('node:test');
const h = require('./helpers');
const {assert, stowage} = h;

let tf;
let moto;
let serve;
let work;
const profile = () => ({profile: `${work}/profile`});

before(async () => {
  tf = await h.loadTf();
  work = h.tempDir();
  moto = await h.startMoto();
  serve = await h.startServe(h.fileUrl(`${work}/served`), ['--create']);
});

after(async () => {
  if (serve) await serve.stop();
  if (moto) await moto.stop();
});

// Where each scheme saves a model and where it loads it from.
function targets(id) {
  const s3 = moto.options;
  return [
    {scheme: 'file', save: h.fileUrl(`${work}/file/${id}`), load: h.fileUrl(`${work}/file/${id}/model.json`)},
    {
      scheme: 'file, shards of 1 KiB',
      save: h.fileUrl(`${work}/sharded/${id}`),
      saveOptions: {shard_size: 1024},
      load: h.fileUrl(`${work}/sharded/${id}/model.json`),
    },
    {scheme: 'memory', save: `memory://roundtrip/${id}`, load: `memory://roundtrip/${id}`},
    {scheme: 's3', save: `s3://models/${id}`, saveOptions: s3, load: `s3://models/${id}/model.json`, loadOptions: s3},
    {
      scheme: 's3, shards of 1 KiB',
      save: `s3://models/sharded/${id}`,
      saveOptions: {...s3, shard_size: 1024},
      load: `s3://models/sharded/${id}/model.json`,
      loadOptions: s3,
    },
    {scheme: 'http (stowage serve)', save: `${serve.url}/models/${id}`, load: `${serve.url}/models/${id}/model.json`},
    {scheme: 'localstorage', save: `localstorage://${id}`, saveOptions: profile(), load: `localstorage://${id}`, loadOptions: profile()},
    {scheme: 'indexeddb', save: `indexeddb://${id}`, saveOptions: profile(), load: `indexeddb://${id}`, loadOptions: profile()},
  ];
}

function withoutDate(info) {
  const {dateSaved, ...rest} = info;
  return rest;
}

test('layers models round-trip through every scheme with predictions bit-equal', async (t) => {
  const models = h.interopModels().filter((m) => m.predictions);
  assert.ok(models.length >= 10, `only ${models.length} layers models in the interop set`);
  let saves = 0;
  for (const m of models) {
    await t.test(m.id, async (t) => {
      // The original, read by stowage's file:// plugin.
      const model = await tf.loadLayersModel(stowage.io(h.fileUrl(m.model_json)));
      h.checkPredictions(tf, model, m.predictions, `${m.id} loaded from the interop files`);
      const saveConfig = model.optimizer ? {includeOptimizer: true} : undefined;

      // What TF.js hands a save handler, and the info TF.js computes for it.
      let given;
      await model.save(tf.io.withSaveHandler(async (a) => {
        given = a;
        return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a)};
      }), saveConfig);
      const tfInfo = withoutDate(tf.io.getModelArtifactsInfoForJSON(given));
      const givenBytes = h.weightBytes(given.weightData);

      for (const target of targets(m.id)) {
        await t.test(target.scheme, async () => {
          const before = Date.now();
          const result = await model.save(stowage.io(target.save, target.saveOptions), saveConfig);
          ++saves;
          assert.ok(result.modelArtifactsInfo.dateSaved instanceof Date, 'dateSaved is a Date');
          assert.ok(result.modelArtifactsInfo.dateSaved.getTime() >= before - 1000);
          assert.deepStrictEqual(withoutDate(result.modelArtifactsInfo), tfInfo,
                                 'modelArtifactsInfo differs from what TF.js computes');
          assert.strictEqual(result.errors, undefined);
          if (target.scheme.startsWith('http')) {
            assert.strictEqual(result.responses.length, 1);
            assert.ok(result.responses[0] instanceof Response, 'responses hold fetch Responses');
            assert.strictEqual(result.responses[0].status, 201);
            assert.strictEqual((await result.responses[0].json()).name, m.id);
          } else {
            assert.strictEqual(result.responses, undefined);
          }

          const back = await stowage.io(target.load, target.loadOptions).load();
          assert.ok(Array.isArray(back.weightData) &&
                    back.weightData.every((b) => b instanceof ArrayBuffer));
          assert.ok(h.weightBytes(back.weightData).equals(givenBytes), 'weight bytes differ');
          assert.deepStrictEqual(back.weightSpecs, given.weightSpecs);
          assert.deepStrictEqual(back.modelTopology, given.modelTopology);
          assert.deepStrictEqual(back.userDefinedMetadata, given.userDefinedMetadata);
          assert.deepStrictEqual(back.trainingConfig, given.trainingConfig);
          assert.strictEqual(back.format, 'layers-model');
          if (target.saveOptions && target.saveOptions.shard_size) {
            assert.ok(back.weightData.length > 1 || givenBytes.length <= 1024,
                      'a sharded save gave one buffer');
          }

          const loaded = await tf.loadLayersModel(stowage.io(target.load, target.loadOptions));
          h.checkPredictions(tf, loaded, m.predictions, `${m.id} via ${target.scheme}`);
          loaded.dispose();
        });
      }
      model.dispose();
    });
  }
  assert.strictEqual(saves, models.length * 8);
  // Nothing is left running, and every pinned save buffer was let go but
  // those memory:// still holds.
  assert.strictEqual(stowage.diagnostics().activeCalls, 0);
});

test('cache+http:// loads what was saved over http, then offline from the cache', async (t) => {
  const models = h.interopModels().filter((m) => m.predictions);
  const dir = `${work}/cache`;
  const urlOf = (id) => `cache+${serve.url}/models/${id}/model.json`;
  const urls = new Map(models.map((m) => [m.id, urlOf(m.id)]));
  const missing = urlOf('never-saved');
  for (const m of models) {
    await t.test(m.id, async () => {
      const online = await tf.loadLayersModel(stowage.io(urls.get(m.id), {dir}));
      h.checkPredictions(tf, online, m.predictions, `${m.id} via cache+http`);
      online.dispose();
    });
  }
  assert.strictEqual(fs.readdirSync(`${dir}/models`).length, models.length,
                     'one cached snapshot per model');
  // With the server gone, offline loads can only come from the cache (and a
  // load that must ask the store fails).
  const gone = urlOf(models[0].id);
  await serve.stop();
  serve = null;
  await assert.rejects(stowage.io(gone, {dir, stale_if_error: false}).load(), (e) => {
    assert.strictEqual(e.code, 'UNAVAILABLE');
    return true;
  });
  for (const m of models) {
    await t.test(`${m.id}, offline`, async () => {
      const offline = await tf.loadLayersModel(stowage.io(urls.get(m.id), {dir, offline: true}));
      h.checkPredictions(tf, offline, m.predictions, `${m.id} via cache+http, offline`);
      offline.dispose();
    });
  }
  await assert.rejects(tf.loadLayersModel(stowage.io(missing, {dir, offline: true})), (e) => {
    assert.strictEqual(e.code, 'UNAVAILABLE');
    assert.strictEqual(e.retryable, false);  // offline, asking again cannot help
    assert.ok(e.message.includes(`Cannot load ${missing}: it is not in the cache (${dir}) ` +
                                 'and the host is offline'), e.message);
    return true;
  });
});
