#!/usr/bin/env node
// TensorFlow.js loads what stowage wrote. For every model of a make_models.js
// folder and every copy kind given, COPIES/<id>/<kind>/model.json is loaded
// with real TF.js (4.22.0, CPU backend) through a file-reading IOHandler:
//   * tf.io.decodeWeights gives exactly the values TF.js decoded from the
//     original (bit for bit, NaN payloads and -0 included);
//   * metadata (format, userDefinedMetadata, trainingConfig) is unchanged;
//   * layers models load with tf.loadLayersModel and predict outputs equal,
//     bit for bit, to predictions.json (graph models: tf.loadGraphModel and
//     graph_predictions.json). The weights are bit-identical and the
//     CPU backend is deterministic, so no tolerance is allowed;
//   * a single-file copy of a tfjs-node model is byte-identical to it
//     (model.json and weights.bin), as tfjs-node's own save would be;
//   * sharded copies have shards of at most --shard-size bytes.
// s3:// saves (kinds s3_single, s3_sharded) give every weight file a tag of
// its own (weights.<8 hex digits>.bin); the layout checks expect it there
// and otherwise compare as for the others.
// Usage: node tfjs_load_check.js --models DIR --copies DIR --kinds a,b,c
//        [--shard-size 1024]
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const common = require('./common');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (fallback !== undefined) return fallback;
    process.stderr.write('usage: node tfjs_load_check.js --models DIR --copies DIR --kinds a,b\n');
    process.exit(2);
  }
  return process.argv[i + 1];
}

function readModelJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function weightPaths(modelJSON) {
  return (modelJSON.weightsManifest || []).flatMap((g) => g.paths);
}

async function checkCopy(tf, models, entry, copyDir, kind, shardSize) {
  const file = path.join(copyDir, 'model.json');
  assert.ok(fs.existsSync(file), `${file} is missing`);
  const original = readModelJson(path.join(models, entry.model_json));
  const copy = readModelJson(file);

  // Metadata. A copy writes TF.js's form, so compare parsed values.
  for (const key of ['format', 'userDefinedMetadata', 'trainingConfig']) {
    assert.deepStrictEqual(copy[key], original[key], `${key} differs`);
  }
  assert.deepStrictEqual(copy.modelTopology, original.modelTopology, 'modelTopology differs');

  // Every value, as TF.js decodes it.
  const artifacts = await common.fileIOHandler(file).load();
  const named = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  const got = await common.describeTensors(tf, named, artifacts.weightSpecs);
  Object.values(named).forEach((t) => t.dispose());
  const expected = JSON.parse(fs.readFileSync(path.join(models, entry.expected), 'utf8'));
  assert.strictEqual(artifacts.weightData.byteLength, expected.weight_bytes, 'weight byte count');
  assert.deepStrictEqual(got, expected.weights, 'decoded weights differ');

  // Layout.
  const paths = weightPaths(copy);
  const tagged = kind === 's3_single' || kind === 's3_sharded';
  const untag = (p) => {
    if (!tagged) return p;
    const m = /^(.*)\.[0-9a-f]{8}\.bin$/.exec(p);
    assert.ok(m, `weight file ${p} has no tag`);
    return `${m[1]}.bin`;
  };
  if (kind.endsWith('sharded')) {
    for (const p of paths) {
      assert.match(untag(p), /^group\d+-shard\d+of\d+\.bin$/, `shard name ${p}`);
      const size = fs.statSync(path.join(copyDir, p)).size;
      assert.ok(size <= shardSize, `${p} has ${size} bytes, more than ${shardSize}`);
    }
  } else if (expected.weight_bytes > 0) {
    assert.deepStrictEqual(paths.map(untag), ['weights.bin'], 'single-file copy paths');
  }
  if (!kind.endsWith('sharded') && entry.layout === 'node') {
    const dir = path.dirname(path.join(models, entry.model_json));
    // tfjs-node's model.json, but for the tag in the weight file's name.
    let text = fs.readFileSync(file, 'utf8');
    for (const p of paths) text = text.split(JSON.stringify(p)).join(JSON.stringify(untag(p)));
    assert.ok(
        Buffer.from(text, 'utf8').equals(fs.readFileSync(path.join(dir, 'model.json'))),
        'model.json is not byte-identical to tfjs-node\'s');
    assert.ok(
        fs.readFileSync(path.join(copyDir, paths.length ? paths[0] : 'weights.bin'))
            .equals(fs.readFileSync(path.join(dir, 'weights.bin'))),
        'weights.bin is not byte-identical to tfjs-node\'s');
  }

  // Predictions.
  if (entry.predictions) {
    const model = await tf.loadLayersModel(common.fileIOHandler(file));
    const pred = JSON.parse(fs.readFileSync(path.join(models, entry.predictions), 'utf8'));
    const inputs = pred.inputs.map(
        (i) => tf.tensor(
            i.dtype === 'float32' ? common.decodeFloats(i.values) : i.values, i.shape, i.dtype));
    let outputs = model.predict(inputs.length === 1 ? inputs[0] : inputs);
    if (!Array.isArray(outputs)) outputs = [outputs];
    assert.strictEqual(outputs.length, pred.outputs.length, 'output count');
    outputs.forEach((o, k) => {
      assert.deepStrictEqual(o.shape, pred.outputs[k].shape, `output ${k} shape`);
      assert.deepStrictEqual(
          common.encodeFloats(o.dataSync()), pred.outputs[k].values,
          `output ${k} differs from TF.js's prediction on the original`);
    });
    tf.dispose([...inputs, ...outputs]);
    model.dispose();
  }
  if (entry.graph_predictions) {
    const model = await tf.loadGraphModel(common.fileIOHandler(file));
    await common.checkGraphPredictions(tf, model, path.join(models, entry.graph_predictions));
    model.dispose();
  }
}

async function main() {
  const models = path.resolve(arg('--models'));
  const copies = path.resolve(arg('--copies'));
  const kinds = arg('--kinds').split(',').filter((k) => k !== '');
  const shardSize = Number(arg('--shard-size', '1024'));
  const tf = await common.loadTf();
  const index = JSON.parse(fs.readFileSync(path.join(models, 'index.json'), 'utf8'));
  let passed = 0;
  let failed = 0;
  for (const entry of index.models) {
    for (const kind of kinds) {
      const name = `${entry.id} ${kind}`;
      try {
        await checkCopy(tf, models, entry, path.join(copies, entry.id, kind), kind, shardSize);
        ++passed;
        process.stdout.write(`ok   ${name}\n`);
      } catch (e) {
        ++failed;
        process.stdout.write(`FAIL ${name}: ${e.message.split('\n')[0]}\n`);
      }
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`tfjs_load_check.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
