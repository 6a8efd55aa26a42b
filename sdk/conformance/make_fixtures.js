#!/usr/bin/env node
// Writes the conformance suite's golden models (sdk/conformance/fixtures)
// with real TensorFlow.js (@tensorflow/tfjs 4.22.0, installed by `npm ci` in
// tests/interop). Every file is the same on every run.
//
//   node sdk/conformance/make_fixtures.js [--out sdk/conformance/fixtures]
//
// Five models come from tests/interop/make_models.js (the committed samples
// and the interop set); two are built here: a layers model without weights,
// and a graph model with every optional model.json field, which TF.js loads,
// runs and saves back before it is written.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const interop = path.join(__dirname, '..', '..', 'tests', 'interop');
const common = require(path.join(interop, 'common.js'));

function copyModel(fromDir, toDir) {
  fs.rmSync(toDir, {recursive: true, force: true});
  fs.mkdirSync(toDir, {recursive: true});
  const modelJson = JSON.parse(fs.readFileSync(path.join(fromDir, 'model.json'), 'utf8'));
  const files = ['model.json'];
  for (const group of modelJson.weightsManifest || []) files.push(...group.paths);
  for (const f of files) fs.copyFileSync(path.join(fromDir, f), path.join(toDir, f));
}

function writeModel(dir, modelJsonText, weights) {
  fs.rmSync(dir, {recursive: true, force: true});
  fs.mkdirSync(dir, {recursive: true});
  fs.writeFileSync(path.join(dir, 'model.json'), modelJsonText);
  fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
}

async function capture(tf, model) {
  let artifacts = null;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a)};
  }));
  return artifacts;
}

function weightBytes(weightData) {
  if (Array.isArray(weightData)) return Buffer.concat(weightData.map((b) => Buffer.from(b)));
  return Buffer.from(weightData);
}

// tfjs-node's NodeFileSystem layout (spec §4.8).
function nodeModelJson(a) {
  const m = {
    modelTopology: a.modelTopology,
    weightsManifest: [{paths: ['weights.bin'], weights: a.weightSpecs}],
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
  };
  if (a.trainingConfig != null) m.trainingConfig = a.trainingConfig;
  if (a.signature != null) m.signature = a.signature;
  if (a.userDefinedMetadata != null) m.userDefinedMetadata = a.userDefinedMetadata;
  return JSON.stringify(m);
}

// getModelJSONForModelArtifacts (the http and downloads writers, spec §1.7):
// the one TF.js writer that keeps every optional field.
function httpModelJson(a) {
  const m = {
    modelTopology: a.modelTopology,
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
    weightsManifest: [{paths: ['weights.bin'], weights: a.weightSpecs}],
  };
  for (const k of ['signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature',
                   'trainingConfig']) {
    if (a[k] != null) m[k] = a[k];
  }
  return JSON.stringify(m);
}

// Flatten and Activation layers only: an empty weight list and a 0-byte
// weights.bin, as tfjs-node saves such a model.
async function noWeights(tf) {
  const model = tf.sequential({name: 'no_weights_model'});
  model.add(tf.layers.flatten({inputShape: [2, 3], name: 'flat'}));
  model.add(tf.layers.activation({activation: 'relu', name: 'relu'}));
  const a = await capture(tf, model);
  if (a.weightSpecs.length !== 0) throw new Error('no_weights: the model has weights');
  return {json: nodeModelJson(a), weights: weightBytes(a.weightData)};
}

// A graph model (x · w) whose artifacts hold every optional field:
// trainingConfig, userDefinedMetadata, signature, modelInitializer and
// initializerSignature. TF.js runs it, then saves it as it loaded it.
async function allFields(tf) {
  const dim = (...sizes) => ({dim: sizes.map((s) => ({size: String(s)}))});
  const floatAttr = {type: 'DT_FLOAT'};
  const topology = {
    node: [
      {name: 'x', op: 'Placeholder', attr: {dtype: floatAttr, shape: {shape: dim(-1, 2)}}},
      {
        name: 'w',
        op: 'Const',
        attr: {dtype: floatAttr, value: {tensor: {dtype: 'DT_FLOAT', tensorShape: dim(2, 2)}}}
      },
      {
        name: 'y',
        op: 'MatMul',
        input: ['x', 'w'],
        attr: {T: floatAttr, transpose_a: {b: false}, transpose_b: {b: false}}
      },
      {name: 'Identity', op: 'Identity', input: ['y'], attr: {T: floatAttr}},
    ],
    library: {},
    versions: {producer: 1240},
  };
  const initializer = {
    node: [{
      name: 'init_c',
      op: 'Const',
      attr: {dtype: {type: 'DT_INT32'}, value: {tensor: {dtype: 'DT_INT32', tensorShape: {}}}}
    }],
    versions: {producer: 1240},
  };
  const w = new Float32Array([0.5, -1.25, 3e-7, 1e21]);
  const source = {
    modelTopology: topology,
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    trainingConfig: {
      loss: 'mean_squared_error',
      metrics: ['mae'],
      optimizer_config: {class_name: 'SGD', config: {learning_rate: 0.01}},
    },
    userDefinedMetadata: {description: 'every optional model.json field', 'язык': 'русский'},
    signature: {
      inputs: {x: {name: 'x:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 2)}},
      outputs: {output_0: {name: 'Identity:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 2)}},
    },
    modelInitializer: initializer,
    initializerSignature: {outputs: {'init_c:0': {name: 'init_c:0', dtype: 'DT_INT32'}}},
    weightSpecs: [
      {name: 'w', shape: [2, 2], dtype: 'float32'},
      {name: 'init_c', shape: [], dtype: 'int32'},
    ],
    weightData: new Uint8Array([...new Uint8Array(w.buffer), 7, 0, 0, 0]).buffer,
  };
  const model = await tf.loadGraphModel(tf.io.fromMemory(source));
  const y = model.predict({x: tf.tensor([[1, 0], [0, 1]])});
  const got = Array.from(y.dataSync());
  y.dispose();
  if (got.length !== 4 || got[0] !== 0.5 || got[3] !== Math.fround(1e21)) {
    throw new Error(`all_fields: TF.js computed ${got}`);
  }
  const a = await capture(tf, model);
  for (const k of ['trainingConfig', 'userDefinedMetadata', 'signature', 'modelInitializer',
                   'initializerSignature']) {
    if (a[k] == null) throw new Error(`all_fields: TF.js did not save ${k}`);
  }
  return {json: httpModelJson(a), weights: weightBytes(a.weightData)};
}

async function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = path.resolve(at >= 0 ? args[at + 1] : path.join(__dirname, 'fixtures'));
  const tf = await common.loadTf();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-fixtures-'));
  const make = (extra) => childProcess.execFileSync(
      'node', [path.join(interop, 'make_models.js'), '--out', ...extra], {stdio: 'ignore'});
  make([path.join(tmp, 'samples'), '--samples']);
  make([path.join(tmp, 'interop')]);

  const fixtures = [
    ['dtype_zoo', 'samples/dtype_zoo',
     'every dtype TF.js decodes (float32 specials, int32, bool, string, complex64, ' +
         'zero-element tensors) and quantized uint8/uint16/float16 storage; one weights.bin'],
    ['conv_sharded', 'samples/conv_sharded',
     'a Conv2D layers model in four 512-byte shards; tensors span shard boundaries ' +
         '(Python converter JSON form)'],
    ['dtypes_grouped', 'interop/dtypes/converter',
     'plain dtypes in 1 KiB shards, a float32 tensor spanning three shards, and a second ' +
         'weight group with no files'],
    ['two_inputs_by_layer', 'interop/two_inputs/converter',
     'a functional model with two inputs, one weight group per layer'],
    ['batchnorm_adam', 'interop/batchnorm_adam/node',
     'BatchNormalization trained one step with Adam: optimizer weights and trainingConfig'],
  ];
  const index = {tfjs: tf.version.tfjs, models: []};
  for (const [id, from, description] of fixtures) {
    copyModel(path.join(tmp, from), path.join(out, id));
    index.models.push({id, model_json: `${id}/model.json`, description});
  }
  const built = [
    ['no_weights', await noWeights(tf),
     'a layers model without weights: an empty weight list and a 0-byte weights.bin'],
    ['all_fields', await allFields(tf),
     'a graph model with every optional field (trainingConfig, userDefinedMetadata, ' +
         'signature, modelInitializer, initializerSignature), saved by TF.js as loaded'],
  ];
  for (const [id, m, description] of built) {
    writeModel(path.join(out, id), m.json, m.weights);
    index.models.push({id, model_json: `${id}/model.json`, description});
  }
  fs.writeFileSync(path.join(out, 'index.json'), JSON.stringify(index, null, 1) + '\n');
  fs.rmSync(tmp, {recursive: true, force: true});
  process.stdout.write(`wrote ${index.models.length} golden models to ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`make_fixtures.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
