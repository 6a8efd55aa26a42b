#!/usr/bin/env node
// Builds TF.js models with real TensorFlow.js (@tensorflow/tfjs 4.22.0, CPU
// backend) and writes them the way TF.js's own writers do, with the values
// and predictions TF.js computes, for the interop tests and samples/models.
//
//   node make_models.js --out DIR             the full interop set
//   node make_models.js --out DIR --samples   the small committed samples
//
// Layouts written:
//   node/       tfjs-node's NodeFileSystem: model.json + weights.bin
//   converter/  the Python converter: group{g}-shard{i}of{n}.bin shards and a
//               model.json formatted by Python's json.dump
// Beside each model: expected.json (every tensor as tf.io.decodeWeights
// decodes the saved bytes) and, for layers models, predictions.json (fixed
// inputs and TF.js's outputs). DIR/index.json lists every model.json.
//
// Weights are set from a seeded generator, so every run writes the same
// bytes. Float encoding in the JSON files: see common.js.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');
const common = require('./common');

let tf = null;

// ---------------------------------------------------------------- helpers

// mulberry32: small, seedable, identical on every platform.
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

function uniformF32(rand, n, lo, hi) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; ++i) out[i] = lo + (hi - lo) * rand();
  return out;
}

// Replaces every weight of the model with seeded values (variances stay
// positive), so the bytes do not depend on TF.js's random initializers.
function setSeededWeights(model, seed) {
  const rand = rng(seed);
  const values = model.getWeights().map((w) => {
    const n = w.size;
    const positive = /moving_variance|gamma$/.test(w.name);
    const data = positive ? uniformF32(rand, n, 0.5, 1.5) : uniformF32(rand, n, -0.5, 0.5);
    return tf.tensor(data, w.shape, 'float32');
  });
  model.setWeights(values);
  values.forEach((t) => t.dispose());
}

async function captureArtifacts(model, config) {
  let artifacts = null;
  await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a)};
      }),
      config);
  return artifacts;
}

function toBuffer(weightData) {
  if (Array.isArray(weightData)) return Buffer.concat(weightData.map((b) => Buffer.from(b)));
  return Buffer.from(weightData);
}

function writeFile(file, data) {
  fs.mkdirSync(path.dirname(file), {recursive: true});
  fs.writeFileSync(file, data);
}

// Bytes one tensor takes in the stream starting at `offset` (spec §2.2–§2.4).
function tensorByteSize(spec, bytes, offset) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.quantization) return n * {uint8: 1, uint16: 2, float16: 2}[spec.quantization.dtype];
  if (spec.dtype === 'string') {
    let pos = offset;
    for (let i = 0; i < n; ++i) pos += 4 + bytes.readUInt32LE(pos);
    return pos - offset;
  }
  return n * {float32: 4, int32: 4, bool: 1, complex64: 8}[spec.dtype];
}

// ------------------------------------------------------------- the writers

// tfjs-node's NodeFileSystem.save (tfjs-node/src/io/file_system.ts, spec §4.8):
// the same object, the same key order, JSON.stringify, Buffer.from(weightData).
function writeNodeLayout(dir, a) {
  const modelJSON = {
    modelTopology: a.modelTopology,
    weightsManifest: [{paths: ['weights.bin'], weights: a.weightSpecs}],
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
  };
  if (a.trainingConfig != null) modelJSON.trainingConfig = a.trainingConfig;
  if (a.signature != null) modelJSON.signature = a.signature;
  if (a.userDefinedMetadata != null) modelJSON.userDefinedMetadata = a.userDefinedMetadata;
  writeFile(path.join(dir, 'model.json'), JSON.stringify(modelJSON));
  writeFile(path.join(dir, 'weights.bin'), toBuffer(a.weightData));
}

// Python's json.dump with default arguments: ", " and ": " separators,
// ensure_ascii escapes, float repr. Key order survives (dicts keep insertion
// order). The converter's quantization metadata are Python floats, so they
// print as floats (1.0, not 1).
const kPythonDump = `
import json, sys
m = json.load(sys.stdin)
for g in m.get("weightsManifest") or []:
    for w in g["weights"]:
        q = w.get("quantization")
        if q:
            for k in ("min", "scale"):
                if k in q:
                    q[k] = float(q[k])
json.dump(m, sys.stdout)
`;

function pythonJsonDump(obj) {
  return childProcess.execFileSync('python3', ['-c', kPythonDump], {input: JSON.stringify(obj)});
}

// The Python converter's write_weights + write_artifacts (spec §1.9, §2.6):
// groups cut into shards of shardSize bytes named group{g}-shard{i}of{n}.bin,
// model.json keys format, generatedBy, convertedBy, [userDefinedMetadata],
// modelTopology, weightsManifest. A layers topology is wrapped the way the
// Keras HDF5 converter wraps it ({keras_version, backend, model_config,
// training_config}). `groupOf` maps a weight name to a group key (the
// converter's --split_weights_by_layer); groups must be contiguous.
function writeConverterLayout(dir, a, {shardSize, groupOf = () => 'all', layers}) {
  const bytes = toBuffer(a.weightData);
  const groups = [];
  let offset = 0;
  for (const spec of a.weightSpecs) {
    const size = tensorByteSize(spec, bytes, offset);
    const key = groupOf(spec.name);
    let g = groups[groups.length - 1];
    if (!g || g.key !== key) {
      if (groups.some((x) => x.key === key)) throw new Error(`group ${key} is not contiguous`);
      g = {key, weights: [], begin: offset, end: offset};
      groups.push(g);
    }
    const entry = {name: spec.name, shape: spec.shape, dtype: spec.dtype};
    if (spec.group !== undefined) entry.group = spec.group;
    if (spec.quantization !== undefined) entry.quantization = spec.quantization;
    g.weights.push(entry);
    offset += size;
    g.end = offset;
  }
  if (offset !== bytes.length) throw new Error(`specs cover ${offset} of ${bytes.length} bytes`);
  const manifest = groups.map((g, gi) => {
    const total = g.end - g.begin;
    const n = Math.ceil(total / shardSize);
    const paths = [];
    for (let i = 0; i < n; ++i) {
      const name = `group${gi + 1}-shard${i + 1}of${n}.bin`;
      const begin = g.begin + i * shardSize;
      writeFile(path.join(dir, name), bytes.subarray(begin, Math.min(begin + shardSize, g.end)));
      paths.push(name);
    }
    return {paths, weights: g.weights};
  });
  const modelJSON = {format: a.format};
  let topology = a.modelTopology;
  const graph = a.format === 'graph-model';
  if (layers) {
    modelJSON.generatedBy = `keras v${topology.keras_version}`;
    topology = {
      keras_version: topology.keras_version,
      backend: topology.backend,
      model_config: topology
    };
    if (a.trainingConfig != null) topology.training_config = a.trainingConfig;
  } else {
    modelJSON.generatedBy = a.generatedBy;
  }
  modelJSON.convertedBy = 'TensorFlow.js Converter v4.22.0';
  if (graph) {
    // tf_saved_model_conversion_v2: signature, modelTopology,
    // userDefinedMetadata, weightsManifest.
    if (a.signature != null) modelJSON.signature = a.signature;
    modelJSON.modelTopology = topology;
    if (a.userDefinedMetadata != null) modelJSON.userDefinedMetadata = a.userDefinedMetadata;
  } else {
    if (a.userDefinedMetadata != null) modelJSON.userDefinedMetadata = a.userDefinedMetadata;
    if (topology !== undefined) modelJSON.modelTopology = topology;
  }
  modelJSON.weightsManifest = manifest;
  writeFile(path.join(dir, 'model.json'), pythonJsonDump(modelJSON));
}

// expected.json: what tf.io.decodeWeights makes of the saved bytes.
async function writeExpected(file, a) {
  const bytes = toBuffer(a.weightData);
  const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  const named = tf.io.decodeWeights(data, a.weightSpecs);
  const tensors = await common.describeTensors(tf, named, a.weightSpecs);
  Object.values(named).forEach((t) => t.dispose());
  const lines = tensors.map((t) => JSON.stringify(t));
  // What TF.js reports when saving these artifacts (spec §3), minus the date.
  const info = tf.io.getModelArtifactsInfoForJSON(a);
  delete info.dateSaved;
  writeFile(
      file,
      `{"tfjs":"${tf.version.tfjs}","weight_bytes":${bytes.length},` +
          `"info":${JSON.stringify(info)},"weights":[\n` + lines.join(',\n') + '\n]}\n');
}

async function writePredictions(file, model, inputs) {
  let outputs = model.predict(inputs.map((i) => i.tensor));
  if (!Array.isArray(outputs)) outputs = [outputs];
  const doc = {
    inputs: inputs.map(
        (i) => ({
          name: i.name,
          dtype: i.tensor.dtype,
          shape: i.tensor.shape,
          values: i.tensor.dtype === 'float32' ? common.encodeFloats(i.tensor.dataSync()) :
                                                 Array.from(i.tensor.dataSync()),
        })),
    outputs: outputs.map(
        (o) => ({dtype: o.dtype, shape: o.shape, values: common.encodeFloats(o.dataSync())})),
  };
  outputs.forEach((o) => o.dispose());
  writeFile(file, JSON.stringify(doc) + '\n');
}

// ------------------------------------------------------------- the models

function floatInput(name, shape, seed) {
  const n = shape.reduce((a, b) => a * b, 1);
  return {name, tensor: tf.tensor(uniformF32(rng(seed), n, -1, 1), shape, 'float32')};
}

function intInput(name, shape, seed, max) {
  const rand = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Int32Array(n);
  for (let i = 0; i < n; ++i) data[i] = Math.floor(rand() * max);
  return {name, tensor: tf.tensor(data, shape, 'int32')};
}

// Two Dense layers, with user-defined metadata that exercises JSON number and
// string formatting (exponents, non-ASCII, escapes).
function denseModel() {
  const model = tf.sequential({name: 'dense_model'});
  model.add(tf.layers.dense({units: 4, activation: 'relu', inputShape: [3], name: 'dense1'}));
  model.add(tf.layers.dense({units: 2, activation: 'softmax', name: 'dense2'}));
  setSeededWeights(model, 1);
  model.setUserDefinedMetadata({
    labels: ['кошка', '犬'],
    note: 'tab\there "quoted" \\ slash / end',
    numbers: [0.1, 1e-7, 1e21, 123456789012345680000, 5e-324, -2.5, 0],
    nested: {ok: true, nothing: null},
  });
  return {model, inputs: [floatInput('x', [3, 3], 101)]};
}

function convModel() {
  const model = tf.sequential({name: 'conv_model'});
  model.add(tf.layers.conv2d(
      {filters: 4, kernelSize: 3, activation: 'relu', inputShape: [8, 8, 1], name: 'conv1'}));
  model.add(tf.layers.flatten({name: 'flatten1'}));
  model.add(tf.layers.dense({units: 3, name: 'logits'}));
  setSeededWeights(model, 2);
  return {model, inputs: [floatInput('image', [2, 8, 8, 1], 102)]};
}

function recurrentModel() {
  const model = tf.sequential({name: 'recurrent_model'});
  model.add(tf.layers.embedding({inputDim: 20, outputDim: 6, inputLength: 5, name: 'embed'}));
  model.add(tf.layers.gru({units: 6, returnSequences: true, name: 'gru1'}));
  model.add(tf.layers.lstm({units: 5, name: 'lstm1'}));
  model.add(tf.layers.dense({units: 2, name: 'out'}));
  setSeededWeights(model, 3);
  return {model, inputs: [intInput('tokens', [3, 5], 103, 20)]};
}

// BatchNormalization, compiled with Adam and trained one step, saved with
// includeOptimizer: optimizer weights (group "optimizer", int32 "iter").
async function batchnormAdamModel() {
  const model = tf.sequential({name: 'batchnorm_model'});
  model.add(tf.layers.dense({units: 6, inputShape: [4], name: 'pre'}));
  model.add(tf.layers.batchNormalization({name: 'bn'}));
  model.add(tf.layers.dense({units: 2, name: 'post'}));
  setSeededWeights(model, 4);
  model.compile({optimizer: tf.train.adam(0.01), loss: 'meanSquaredError'});
  const x = tf.tensor(uniformF32(rng(204), 8 * 4, -1, 1), [8, 4]);
  const y = tf.tensor(uniformF32(rng(205), 8 * 2, -1, 1), [8, 2]);
  await model.fit(x, y, {epochs: 1, batchSize: 8, shuffle: false, verbose: 0});
  x.dispose();
  y.dispose();
  return {model, inputs: [floatInput('x', [3, 4], 104)], saveConfig: {includeOptimizer: true}};
}

function twoInputModel() {
  const a = tf.input({shape: [4], name: 'input_a'});
  const b = tf.input({shape: [2], name: 'input_b'});
  const ha = tf.layers.dense({units: 3, activation: 'tanh', name: 'branch_a'}).apply(a);
  const hb = tf.layers.dense({units: 3, activation: 'tanh', name: 'branch_b'}).apply(b);
  const joined = tf.layers.concatenate({name: 'join'}).apply([ha, hb]);
  const out = tf.layers.dense({units: 2, name: 'head'}).apply(joined);
  const model = tf.model({inputs: [a, b], outputs: out, name: 'two_input_model'});
  setSeededWeights(model, 5);
  return {model, inputs: [floatInput('input_a', [3, 4], 105), floatInput('input_b', [3, 2], 106)]};
}

// ------------------------------------------------------- weights-only zoos

function f32FromBits(bits) {
  return new Float32Array(new Uint32Array(bits).buffer);
}

// Plain dtypes, encoded by tf.io.encodeWeights one tensor at a time so the
// order can put a float32 at an odd offset (after a bool).
function plainEntries() {
  const rand = rng(7);
  const big = uniformF32(rand, 700, -4, 4);  // 2800 bytes: spans 1 KiB shards
  const ints = new Int32Array(300);
  for (let i = 0; i < ints.length; ++i) ints[i] = Math.floor((rand() - 0.5) * 2 ** 32);
  return [
    ['scalar_f32', tf.scalar(3.25)],
    ['flags', tf.tensor([true, false, true], [3], 'bool')],
    ['after_bool_f32', tf.tensor([1.5, -2.25, 1e-7, 3.4e38, 0.1, 7], [2, 3], 'float32')],
    [
      'special_f32',
      tf.tensor(
          f32FromBits([
            0x00000000,
            0x80000000,
            0x3f800000,
            0xbf800000,
            0x7fc00000,
            0x7f800000,
            0xff800000,
            0x7f7fffff,
            0xff7fffff,
            0x00000001,
            0x00800000,
            0x3dcccccd,
            0x7fc00001,
            0xffc00000,
          ]),
          [14], 'float32')
    ],
    ['ints', tf.tensor(new Int32Array([0, -1, 2147483647, -2147483648]), [2, 2], 'int32')],
    ['empty_f32', tf.zeros([0, 4], 'float32')],
    [
      'words',
      tf.tensor(['', 'hello', 'Привет, мир', '正常', '😀 emoji', 'a\u0000b'], [2, 3], 'string')
    ],
    ['no_words', tf.tensor([], [0], 'string')],
    ['one_word', tf.scalar('скаляр', 'string')],
    [
      'raw_bytes',
      tf.tensor([new Uint8Array([0xff, 0x00, 0xfe]), new Uint8Array([])], [2], 'string')
    ],
    ['waves', tf.complex(tf.tensor([1, 2, -0.5]), tf.tensor([0.25, -3, 1e-30]))],
    ['big_f32', tf.tensor(big, [7, 100], 'float32')],
    ['big_i32', tf.tensor(ints, [300], 'int32')],
    ['empty_i32', tf.zeros([3, 0], 'int32')],
  ];
}

async function encodeOne(name, tensor) {
  const {data, specs} = await tf.io.encodeWeights([{name, tensor}]);
  return {spec: specs[0], bytes: Buffer.from(data)};
}

// numpy.round: halves to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// quantization.py quantize_weights for uint8/uint16 (spec §2.4.3), in float64
// arithmetic (NumPy 2 promotes the float32 data against float64 bounds).
function quantizeAffine(data, storage) {
  const qmax = storage === 'uint8' ? 255 : 65535;
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const q = storage === 'uint8' ? new Uint8Array(data.length) : new Uint16Array(data.length);
  if (min === max) return {q, meta: {min, scale: 1.0}};
  const scale = (max - min) / qmax;
  let lo = min;
  let hi = max;
  if (min <= 0 && 0 <= max) {
    const zp = roundHalfEven((0 - min) / scale);
    lo = -zp * scale;
    hi = qmax * scale + lo;
  }
  for (let i = 0; i < data.length; ++i) {
    q[i] = roundHalfEven((Math.min(Math.max(data[i], lo), hi) - lo) / scale);
  }
  return {q, meta: {min: lo, scale}};
}

// numpy float32 -> float16: round to nearest even, overflow to infinity, NaN
// payload kept (npy_floatbits_to_halfbits).
function f32ToF16(x) {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    const h = 0x7c00 + (mant >>> 13);
    return sign | (h === 0x7c00 ? 0x7c01 : h);
  }
  const e = exp - 112;  // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) ++h;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) ++h;  // a carry may reach infinity
  return sign | h;
}

function leBytes(typed) {
  return Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
}

// Quantized float32 weights in the converter's manifest form, plus an int32
// weight stored as uint8 (TF.js rounds those with Math.round, spec §2.4.1)
// and a bool with raw byte values.
function quantizedEntries() {
  const rand = rng(8);
  const out = [];
  const affine = (name, shape, data, storage) => {
    const {q, meta} = quantizeAffine(data, storage);
    out.push({
      spec: {
        name,
        shape,
        dtype: 'float32',
        quantization: {dtype: storage, min: meta.min, scale: meta.scale, original_dtype: 'float32'}
      },
      bytes: Buffer.from(leBytes(q)),
    });
  };
  affine('q_u8', [5, 9], uniformF32(rand, 45, -1.3, 2.7), 'uint8');  // 45 bytes: odd length
  out.push({
    spec: {name: 'after_u8_f32', shape: [3], dtype: 'float32'},
    bytes: Buffer.from(leBytes(new Float32Array([0.5, -0.75, 1e-3])))
  });
  affine('q_u16', [2, 40], uniformF32(rand, 80, -0.02, 0.05), 'uint16');
  affine('q_u8_positive', [12], uniformF32(rand, 12, 2, 3), 'uint8');  // no nudge
  affine('q_u8_constant', [4], new Float32Array([0.3, 0.3, 0.3, 0.3]), 'uint8');
  const halfSource = new Float32Array([
    0,
    -0,
    1,
    -1,
    0.25,
    1 / 3,
    65504,
    70000,
    -1e9,
    5.960464477539063e-8,
    2e-8,
    3e-8,
    6.1e-5,
    Infinity,
    -Infinity,
    NaN,
    0.1,
    1234.5678,
  ]);
  // A NaN with a payload, stored as is: its bits must come through.
  const halves = new Uint16Array([...Array.from(halfSource, f32ToF16), 0x7d01]);
  out.push({
    spec: {
      name: 'q_f16',
      shape: [halves.length],
      dtype: 'float32',
      quantization: {dtype: 'float16', original_dtype: 'float32'}
    },
    bytes: Buffer.from(leBytes(halves))
  });
  out.push({
    spec: {
      name: 'q_u8_int32',
      shape: [8],
      dtype: 'int32',
      quantization: {dtype: 'uint8', min: -1.25, scale: 0.5}
    },
    bytes: Buffer.from([0, 1, 2, 3, 4, 5, 6, 255])
  });
  out.push({spec: {name: 'raw_bool', shape: [3], dtype: 'bool'}, bytes: Buffer.from([0, 2, 255])});
  out.push({
    spec: {name: 'tail_f32', shape: [2], dtype: 'float32'},
    bytes: Buffer.from(leBytes(new Float32Array([-8.5, 42])))
  });
  return out;
}

async function zooArtifacts(entries, description) {
  return {
    format: 'weights-only',
    generatedBy: `TensorFlow.js tfjs-core v${tf.version.tfjs} (stowage interop make_models.js)`,
    convertedBy: null,
    userDefinedMetadata: {description, 'язык': 'русский', '言語': '日本語'},
    weightSpecs: entries.map((e) => e.spec),
    // A plain ArrayBuffer, as LayersModel.save gives: TF.js sizes a typed
    // array by its whole underlying buffer (spec §2.6).
    weightData: new Uint8Array(Buffer.concat(entries.map((e) => e.bytes))).buffer,
  };
}

async function plainZoo() {
  const entries = [];
  for (const [name, t] of plainEntries()) entries.push(await encodeOne(name, t));
  return zooArtifacts(entries, 'every plain dtype, encoded by tf.io.encodeWeights');
}

async function quantizedZoo() {
  return zooArtifacts(quantizedEntries(), 'quantized weights in the Python converter form');
}

async function fullZoo() {
  const entries = [];
  for (const [name, t] of plainEntries()) entries.push(await encodeOne(name, t));
  entries.push(...quantizedEntries());
  return zooArtifacts(entries, 'every dtype TF.js decodes, quantized storage included');
}

// ------------------------------------------------------------ a graph model

// A graph model (format "graph-model") written by hand in the converter's
// JSON form of a GraphDef (spec §7; TF.js cannot write one itself):
//   x [-1,16] -> MatMul -> BiasAdd -> Relu -> MatMul -> BiasAdd -> Softmax -> "probs"
//                                      `-> Reshape [-1,4,8] -> "hidden"
// with a signature naming the input and both outputs. Its weights mix
// float32, uint8- and float16-quantized storage and an int32 shape; every
// Const value is in the weights, in node order, as the converter puts them.
function graphArtifacts() {
  const rand = rng(9);
  const dim = (...d) => ({dim: d.map((s) => ({size: String(s)}))});
  const T = {type: 'DT_FLOAT'};
  const constNode = (name, dtype, shape) => ({
    name,
    op: 'Const',
    attr: {value: {tensor: {dtype, tensorShape: dim(...shape)}}, dtype: {type: dtype}},
  });
  const matmul = (name, a, b) => ({
    name,
    op: 'MatMul',
    input: [a, b],
    attr: {transpose_a: {b: false}, transpose_b: {b: false}, T},
  });
  const biasAdd = (name, a, b) =>
      ({name, op: 'BiasAdd', input: [a, b], attr: {T, data_format: {s: 'TkhXQw=='}}});  // NHWC
  const nodes = [
    {name: 'x', op: 'Placeholder', attr: {dtype: T, shape: {shape: dim(-1, 16)}}},
    constNode('dense/kernel', 'DT_FLOAT', [16, 32]),
    constNode('dense/bias', 'DT_FLOAT', [32]),
    constNode('head/kernel', 'DT_FLOAT', [32, 4]),
    constNode('head/bias', 'DT_FLOAT', [4]),
    constNode('hidden_shape', 'DT_INT32', [3]),
    matmul('dense/MatMul', 'x', 'dense/kernel'),
    biasAdd('dense/BiasAdd', 'dense/MatMul', 'dense/bias'),
    {name: 'dense/Relu', op: 'Relu', input: ['dense/BiasAdd'], attr: {T}},
    matmul('head/MatMul', 'dense/Relu', 'head/kernel'),
    biasAdd('head/BiasAdd', 'head/MatMul', 'head/bias'),
    {name: 'probs', op: 'Softmax', input: ['head/BiasAdd'], attr: {T}},
    {
      name: 'hidden',
      op: 'Reshape',
      input: ['dense/Relu', 'hidden_shape'],
      attr: {T, Tshape: {type: 'DT_INT32'}},
    },
    {name: 'Identity', op: 'Identity', input: ['probs'], attr: {T}},
    {name: 'Identity_1', op: 'Identity', input: ['hidden'], attr: {T}},
  ];
  const entries = [];
  const plain = (name, shape, data) => entries.push(
      {spec: {name, shape, dtype: 'float32'}, bytes: Buffer.from(leBytes(data))});
  plain('dense/kernel', [16, 32], uniformF32(rand, 16 * 32, -0.5, 0.5));
  plain('dense/bias', [32], uniformF32(rand, 32, -0.1, 0.1));
  const {q, meta} = quantizeAffine(uniformF32(rand, 32 * 4, -1, 1), 'uint8');
  entries.push({
    spec: {
      name: 'head/kernel',
      shape: [32, 4],
      dtype: 'float32',
      quantization: {dtype: 'uint8', min: meta.min, scale: meta.scale, original_dtype: 'float32'},
    },
    bytes: Buffer.from(leBytes(q)),
  });
  const halves = Uint16Array.from(uniformF32(rand, 4, -0.2, 0.2), f32ToF16);
  entries.push({
    spec: {
      name: 'head/bias',
      shape: [4],
      dtype: 'float32',
      quantization: {dtype: 'float16', original_dtype: 'float32'},
    },
    bytes: Buffer.from(leBytes(halves)),
  });
  entries.push({
    spec: {name: 'hidden_shape', shape: [3], dtype: 'int32'},
    bytes: Buffer.from(leBytes(new Int32Array([-1, 4, 8]))),
  });
  return {
    modelTopology: {node: nodes, library: {}, versions: {producer: 1395}},
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    signature: {
      inputs: {x: {name: 'x:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 16)}},
      outputs: {
        probs: {name: 'Identity:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 4)},
        hidden: {name: 'Identity_1:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 4, 8)},
      },
    },
    weightSpecs: entries.map((e) => e.spec),
    weightData: new Uint8Array(Buffer.concat(entries.map((e) => e.bytes))).buffer,
  };
}

// What TF.js's own GraphModel computes for fixed inputs (the same form as
// predictions.json): the reference for every copy of the graph model.
async function writeGraphPredictions(file, artifacts, inputs) {
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  let outputs = model.execute(inputs.map((i) => i.tensor));
  if (!Array.isArray(outputs)) outputs = [outputs];
  const doc = {
    inputs: inputs.map((i) => ({
                         name: i.name,
                         dtype: i.tensor.dtype,
                         shape: i.tensor.shape,
                         values: common.encodeFloats(i.tensor.dataSync()),
                       })),
    outputs: outputs.map(
        (o) => ({dtype: o.dtype, shape: o.shape, values: common.encodeFloats(o.dataSync())})),
  };
  outputs.forEach((o) => o.dispose());
  model.dispose();
  writeFile(file, JSON.stringify(doc) + '\n');
}

// -------------------------------------------------------------- the driver

const kLayerModels = {
  dense: denseModel,
  conv: convModel,
  recurrent: recurrentModel,
  batchnorm_adam: batchnormAdamModel,
  two_inputs: twoInputModel,
};

async function buildLayers(name) {
  const built = await kLayerModels[name]();
  const artifacts = await captureArtifacts(built.model, built.saveConfig);
  return {artifacts, model: built.model, inputs: built.inputs};
}

function byLayer(weightName) {
  return weightName.split('/')[0];
}

async function writeModel(out, index, name, built, layouts) {
  const dir = path.join(out, name);
  await writeExpected(path.join(dir, 'expected.json'), built.artifacts);
  const layers = built.model !== undefined;
  const graph = built.graphInputs !== undefined;
  if (layers) await writePredictions(path.join(dir, 'predictions.json'), built.model, built.inputs);
  if (graph) {
    await writeGraphPredictions(
        path.join(dir, 'graph_predictions.json'), built.artifacts, built.graphInputs);
  }
  for (const layout of layouts) {
    const sub = layout.dir === '' ? dir : path.join(dir, layout.dir);
    if (layout.kind === 'node') {
      writeNodeLayout(sub, built.artifacts);
    } else {
      writeConverterLayout(
          sub, built.artifacts, {shardSize: layout.shardSize, groupOf: layout.groupOf, layers});
    }
    const rel = (p) => path.relative(out, p).split(path.sep).join('/');
    index.models.push({
      id: layout.dir === '' ? name : `${name}/${layout.dir}`,
      layout: layout.kind,
      model_json: rel(path.join(sub, 'model.json')),
      expected: rel(path.join(dir, 'expected.json')),
      predictions: layers ? rel(path.join(dir, 'predictions.json')) : null,
      graph_predictions: graph ? rel(path.join(dir, 'graph_predictions.json')) : null,
    });
  }
}

async function main() {
  const args = process.argv.slice(2);
  const outIdx = args.indexOf('--out');
  if (outIdx < 0 || outIdx + 1 >= args.length) {
    process.stderr.write('usage: node make_models.js --out DIR [--samples]\n');
    process.exit(2);
  }
  const out = path.resolve(args[outIdx + 1]);
  const samples = args.includes('--samples');
  tf = await common.loadTf();
  fs.mkdirSync(out, {recursive: true});
  const index = {tfjs: tf.version.tfjs, models: []};
  const node = {kind: 'node', dir: 'node'};
  const converter = (shardSize, groupOf) =>
      ({kind: 'converter', dir: 'converter', shardSize, groupOf});

  if (samples) {
    // Small enough to commit; see samples/models/README.md.
    await writeModel(out, index, 'dense', await buildLayers('dense'), [{kind: 'node', dir: ''}]);
    // Also in tfjs-node's layout: interop_samples_read compares the two forms.
    await writeModel(
        out, index, 'conv_sharded', await buildLayers('conv'),
        [{kind: 'converter', dir: '', shardSize: 512}, {kind: 'node', dir: 'node'}]);
    await writeModel(
        out, index, 'dtype_zoo', {artifacts: await fullZoo()}, [{kind: 'node', dir: ''}]);
  } else {
    for (const name of Object.keys(kLayerModels)) {
      const split = name === 'two_inputs' ? byLayer : undefined;
      await writeModel(out, index, name, await buildLayers(name), [node, converter(1024, split)]);
    }
    // The last tensor has no elements: alone in group 2 it gives "paths": [].
    const emptyLast = (n) => (n === 'empty_i32' ? 'empty' : 'all');
    await writeModel(
        out, index, 'dtypes', {artifacts: await plainZoo()}, [node, converter(1024, emptyLast)]);
    await writeModel(
        out, index, 'quantized', {artifacts: await quantizedZoo()}, [node, converter(64)]);
    await writeModel(
        out, index, 'graph',
        {artifacts: graphArtifacts(), graphInputs: [floatInput('x', [3, 16], 109)]},
        [node, converter(1024)]);
  }
  writeFile(path.join(out, 'index.json'), JSON.stringify(index, null, 1) + '\n');
  process.stdout.write(`wrote ${index.models.length} models to ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`make_models.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
