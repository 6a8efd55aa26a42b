#!/usr/bin/env node
// Real TensorFlow.js (4.22.0, CPU backend) loads models that `stowage copy
// --quantize` wrote and predicts within the quantization error bounds
// (docs/quantization.md):
//   * TF.js builds a two-layer model (Dense+ReLU, Dense) with seeded weights
//     and saves it as tfjs-node does (model.json + weights.bin);
//   * stowage copies it with --quantize uint8, uint16, float16, uint8 under
//     NumPy 1 rules, uint16 for the kernels only, and uint8 cut into shards;
//   * tf.loadLayersModel loads each copy: every weight TF.js decodes is within
//     its bound of the original (scale/2 for uint8/uint16, 2^-11 relative for
//     float16) and 0.0 stays exactly 0; the predictions on fixed inputs stay
//     within the bound that follows from those weight bounds through the two
//     layers (ReLU cannot grow a difference), computed here from the float32
//     weights;
//   * `stowage info --stats --json` of each copy reports as min and max
//     exactly the extremes of the weights TF.js decoded.
// Usage: node quantize_check.js --stowage BIN --out DIR
'use strict';

const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');
const common = require('./common');

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    process.stderr.write('usage: node quantize_check.js --stowage BIN --out DIR\n');
    process.exit(2);
  }
  return process.argv[i + 1];
}

// mulberry32, as make_models.js: the same weights on every run.
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

function stowage(bin, args) {
  const r = childProcess.spawnSync(bin, args, {encoding: 'utf8'});
  if (r.status !== 0) {
    throw new Error(`stowage ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

const kInputs = 8;
const kHidden = 16;
const kOutputs = 4;
const kSamples = 32;

async function makeModel(tf, dir) {
  const model = tf.sequential();
  model.add(tf.layers.dense(
      {units: kHidden, activation: 'relu', inputShape: [kInputs], name: 'hidden'}));
  model.add(tf.layers.dense({units: kOutputs, name: 'out'}));
  const rand = rng(1515);
  const values = model.getWeights().map((w) => {
    const data = new Float32Array(w.size);
    for (let i = 0; i < data.length; ++i) data[i] = (rand() - 0.5) * (w.shape.length === 2 ? 1.2 : 0.4);
    if (w.name.startsWith('hidden/kernel')) data[5] = 0;  // 0.0 must survive exactly
    if (w.name.startsWith('out/bias')) data.forEach((v, i) => (data[i] = 0.1 + Math.abs(v)));  // all positive: no nudge
    return tf.tensor(data, w.shape);
  });
  model.setWeights(values);
  values.forEach((t) => t.dispose());
  let artifacts = null;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a)};
  }));
  fs.mkdirSync(dir, {recursive: true});
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{paths: ['weights.bin'], weights: artifacts.weightSpecs}],
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  }));
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(artifacts.weightData));
  return model;
}

// name -> Float32Array of the model's weights as TF.js holds them.
function weightsOf(model) {
  const out = {};
  for (const w of model.weights) out[w.originalName] = w.read().dataSync().slice();
  return out;
}

// The bound on abs(decoded - original) for each element of one weight.
function elementBounds(spec, original) {
  const q = spec.quantization;
  if (!q) return original.map(() => 0);
  if (q.dtype === 'float16') {
    return original.map((w) => Math.max(Math.abs(w) * 2 ** -11, 2 ** -25));
  }
  return original.map((w) => q.scale / 2 + Math.abs(w) * 2 ** -24);
}

// Per output, the bound on abs(y' - y) for input x, given the float32
// weights and per-element weight bounds (float64 arithmetic), with a slack
// for float32 rounding inside both predictions.
function predictionBound(w, e, x) {
  const W1 = w['hidden/kernel'], b1 = w['hidden/bias'], W2 = w['out/kernel'], b2 = w['out/bias'];
  const eW1 = e['hidden/kernel'], eb1 = e['hidden/bias'], eW2 = e['out/kernel'], eb2 = e['out/bias'];
  const h = new Float64Array(kHidden), dh = new Float64Array(kHidden), mag1 = new Float64Array(kHidden);
  for (let j = 0; j < kHidden; ++j) {
    let z = b1[j], dz = eb1[j], m = Math.abs(b1[j]);
    for (let i = 0; i < kInputs; ++i) {
      z += x[i] * W1[i * kHidden + j];
      dz += Math.abs(x[i]) * eW1[i * kHidden + j];
      m += Math.abs(x[i] * W1[i * kHidden + j]);
    }
    h[j] = Math.max(z, 0);
    dh[j] = dz;  // ReLU is 1-Lipschitz
    mag1[j] = m;
  }
  const bounds = [];
  for (let k = 0; k < kOutputs; ++k) {
    let d = eb2[k], m = Math.abs(b2[k]);
    for (let j = 0; j < kHidden; ++j) {
      const a = Math.abs(W2[j * kOutputs + k]);
      d += (a + eW2[j * kOutputs + k]) * dh[j] + eW2[j * kOutputs + k] * h[j];
      m += a * (h[j] + dh[j]) + a * mag1[j];
    }
    bounds.push(d + 1e-5 * (m + 1));
  }
  return bounds;
}

async function main() {
  const tf = await common.loadTf();
  const bin = arg('--stowage');
  const out = path.resolve(arg('--out'));
  fs.rmSync(out, {recursive: true, force: true});
  const floatDir = path.join(out, 'float32');
  const floatModel = await makeModel(tf, floatDir);
  const original = weightsOf(floatModel);

  const rand = rng(99);
  const inputs = [];
  for (let s = 0; s < kSamples; ++s) {
    inputs.push(Array.from({length: kInputs}, () => (rand() - 0.5) * 4));
  }
  const x = tf.tensor2d(inputs);
  const reference = floatModel.predict(x).arraySync();

  const copies = [
    {name: 'uint8', args: ['--quantize', 'uint8'], quantized: 4},
    {name: 'uint16', args: ['--quantize', 'uint16'], quantized: 4},
    {name: 'float16', args: ['--quantize', 'float16'], quantized: 4},
    {name: 'uint8_numpy1', args: ['--quantize', 'uint8', '--quantize-numpy', '1'], quantized: 4},
    {name: 'uint16_kernels', args: ['--quantize', 'uint16', '--quantize-only', '*/kernel'],
     quantized: 2},
    {name: 'uint8_sharded', args: ['--quantize', 'uint8', '--shard-size', '64'], quantized: 4},
  ];
  let passed = 0, failed = 0;
  for (const c of copies) {
    try {
      const dir = path.join(out, c.name);
      stowage(bin, ['copy', 'file://' + path.join(floatDir, 'model.json'), 'file://' + dir, ...c.args]);
      const modelJSON = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = Object.fromEntries(
          modelJSON.weightsManifest.flatMap((g) => g.weights).map((s) => [s.name, s]));
      const quantized = Object.values(specs).filter((s) => s.quantization);
      assert.strictEqual(quantized.length, c.quantized, 'number of quantized weights');
      if (c.name === 'uint8_sharded') {
        assert.ok(modelJSON.weightsManifest[0].paths.length > 1, 'expected several shards');
      }

      const model = await tf.loadLayersModel(common.fileIOHandler(path.join(dir, 'model.json')));
      const decoded = weightsOf(model);
      const bounds = {};
      let worstWeight = 0;
      for (const [name, w] of Object.entries(original)) {
        bounds[name] = elementBounds(specs[name], w);
        for (let i = 0; i < w.length; ++i) {
          const err = Math.abs(decoded[name][i] - w[i]);
          assert.ok(err <= bounds[name][i],
                    `${name}[${i}]: ${decoded[name][i]} is ${err} from ${w[i]} (bound ${bounds[name][i]})`);
          if (w[i] === 0) assert.strictEqual(decoded[name][i], 0, `${name}[${i}]: 0 is not exact`);
          if (bounds[name][i] > 0) worstWeight = Math.max(worstWeight, err / bounds[name][i]);
        }
      }

      const y = model.predict(x).arraySync();
      let worst = 0, changed = false;
      for (let s = 0; s < kSamples; ++s) {
        const b = predictionBound(original, bounds, inputs[s]);
        for (let k = 0; k < kOutputs; ++k) {
          const err = Math.abs(y[s][k] - reference[s][k]);
          assert.ok(err <= b[k], `sample ${s} output ${k}: error ${err} above the bound ${b[k]}`);
          worst = Math.max(worst, err / b[k]);
          changed = changed || err > 0;
        }
      }
      assert.ok(changed, 'the quantized model predicts exactly as the float32 one: not quantized?');

      // stowage info --stats: the dequantised range, as TF.js decoded it.
      const info = JSON.parse(stowage(bin, ['info', 'file://' + path.join(dir, 'model.json'),
                                            '--stats', '--json']));
      for (const w of info.weights) {
        const values = decoded[w.name];
        const min = values.reduce((a, b) => Math.min(a, b), Infinity);
        const max = values.reduce((a, b) => Math.max(a, b), -Infinity);
        assert.strictEqual(w.stats.min, min, `${w.name}: info --stats min`);
        assert.strictEqual(w.stats.max, max, `${w.name}: info --stats max`);
      }
      model.dispose();
      ++passed;
      process.stdout.write(
          `ok ${c.name}: weights within ${(100 * worstWeight).toFixed(1)}% of their bound, ` +
          `predictions within ${(100 * worst).toFixed(1)}% of theirs\n`);
    } catch (e) {
      ++failed;
      process.stderr.write(`FAIL ${c.name}: ${e.stack || e}\n`);
    }
  }
  x.dispose();
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
