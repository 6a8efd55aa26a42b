// A graph model ("graph-model": a GraphDef in the converter's JSON form with
// a signature, two outputs, float32, uint8- and float16-quantized and int32
// weights; written by make_models.js) through tf.loadGraphModel(stowage.io(u))
// and executed. Its outputs must equal, bit for bit, those of the same model
// loaded by TF.js's own http loader from the same server, and those TF.js
// computed when it built the model. Also GraphModel.save(stowage.io(u)),
// which hands over weightData as ArrayBuffer[] (spec §1.9).
'use strict';

const {test, before, after} = require('node:test');
const path = require('path');
const h = require('./helpers');
const {assert, stowage} = h;

let tf;
let web;
let moto;
let work;

before(async () => {
  tf = await h.loadTf();
  work = h.tempDir();
  web = await h.startStatic(h.env('STOWAGE_INTEROP_DIR'));
  moto = await h.startMoto();
});

after(async () => {
  if (web) await web.stop();
  if (moto) await moto.stop();
});

function graphModels() {
  const models = h.interopModels().filter((m) => m.graph_predictions);
  assert.strictEqual(models.length, 2, 'the interop set has the graph model in two layouts');
  return models;
}

function run(model, file) {
  const pred = require(file);
  const inputs = pred.inputs.map(
      (i) => tf.tensor(h.interop.decodeFloats(i.values), i.shape, i.dtype));
  let outputs = model.execute(inputs);
  if (!Array.isArray(outputs)) outputs = [outputs];
  const out = outputs.map((o) => ({shape: o.shape, values: h.interop.encodeFloats(o.dataSync())}));
  tf.dispose([...inputs, ...outputs]);
  return out;
}

test('graph models run the same through stowage.io as through TF.js\'s http loader', async (t) => {
  for (const m of graphModels()) {
    await t.test(path.relative(m.root, m.model_json), async (t) => {
      const rel = path.relative(m.root, m.model_json).split(path.sep).join('/');
      const httpUrl = `${web.url}/${rel}`;
      // TF.js's own loader (fetch), the reference.
      const reference = await tf.loadGraphModel(httpUrl);
      const want = run(reference, m.graph_predictions);
      const recorded = require(m.graph_predictions).outputs;
      assert.deepStrictEqual(want.map((o) => o.values), recorded.map((o) => o.values),
                             'TF.js\'s own loader disagrees with make_models.js');
      assert.deepStrictEqual(want.map((o) => o.shape), [[3, 4], [3, 4, 8]]);
      reference.dispose();

      const id = rel.replace(/\/model\.json$/, '');
      await stowage.copy(h.fileUrl(m.model_json), `memory://graph/${id}`);
      await stowage.copy(h.fileUrl(m.model_json), `s3://models/graph/${id}`,
                         {destinationOptions: {...moto.options, shard_size: 700}});
      const sources = [
        ['http (the same server)', httpUrl],
        ['file', h.fileUrl(m.model_json)],
        ['memory', `memory://graph/${id}`],
        ['s3', `s3://models/graph/${id}/model.json`, moto.options],
      ];
      for (const [scheme, url, options] of sources) {
        await t.test(scheme, async () => {
          const model = await tf.loadGraphModel(stowage.io(url, options));
          assert.deepStrictEqual(run(model, m.graph_predictions), want);
          assert.deepStrictEqual(Object.keys(model.signature.outputs), ['probs', 'hidden']);

          // GraphModel.save hands the loaded artifacts back, weightData as an
          // ArrayBuffer[] over stowage's own buffers.
          const dir = `${work}/saved/${id}/${scheme.split(' ')[0]}`;
          const result = await model.save(stowage.io(h.fileUrl(dir)));
          assert.strictEqual(result.modelArtifactsInfo.weightDataBytes,
                             require(m.expected).weight_bytes);
          model.dispose();
          const again = await tf.loadGraphModel(stowage.io(h.fileUrl(`${dir}/model.json`)));
          assert.deepStrictEqual(run(again, m.graph_predictions), want);
          const saved = await stowage.io(h.fileUrl(`${dir}/model.json`)).load();
          assert.strictEqual(saved.format, 'graph-model');
          assert.deepStrictEqual(saved.signature, again.artifacts.signature);
          again.dispose();
        });
      }

      // TF.js's own loader hands an ArrayBuffer[] to GraphModel.save as well
      // (tfjs-node's file:// would write zeros there, spec §4.8 B1).
      const fromTfjs = await tf.loadGraphModel(httpUrl);
      const dir = `${work}/from-tfjs/${id}`;
      await fromTfjs.save(stowage.io(h.fileUrl(dir)));
      fromTfjs.dispose();
      const reloaded = await tf.loadGraphModel(stowage.io(h.fileUrl(`${dir}/model.json`)));
      assert.deepStrictEqual(run(reloaded, m.graph_predictions), want);
      reloaded.dispose();
    });
  }
});
