// Helpers shared by make_models.js and tfjs_load_check.js.
//
// Float values travel through JSON exactly: a finite, non-zero float32 widened
// to a double prints (JSON.stringify) as the shortest string that parses back
// to the same double, hence to the same float32. The values JSON cannot hold
// are strings: "NaN" (0x7fc00000), "NaN:0x7fa00001" (any other NaN bit
// pattern), "Infinity", "-Infinity" and "-0".
'use strict';

const fs = require('fs');
const path = require('path');

let tf = null;
// Loads @tensorflow/tfjs on the pure-JS CPU backend, or exits with a message
// that says how to install it.
async function loadTf() {
  if (tf !== null) return tf;
  try {
    tf = require('@tensorflow/tfjs');
  } catch (e) {
    process.stderr.write(
        'error: @tensorflow/tfjs is not installed for the interop tests (' +
        e.message.split('\n')[0] + ').\nRun `npm ci` in tests/interop first.\n');
    process.exit(2);
  }
  if (tf.version.tfjs !== '4.22.0') {
    process.stderr.write(
        `error: expected @tensorflow/tfjs 4.22.0, found ${tf.version.tfjs}; ` +
        'run `npm ci` in tests/interop.\n');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  return tf;
}

function encodeFloats(f32) {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Array(f32.length);
  for (let i = 0; i < f32.length; ++i) {
    const v = f32[i];
    if (Number.isNaN(v)) {
      out[i] = bits[i] === 0x7fc00000 ? 'NaN' : 'NaN:0x' + bits[i].toString(16).padStart(8, '0');
    } else if (v === Infinity) {
      out[i] = 'Infinity';
    } else if (v === -Infinity) {
      out[i] = '-Infinity';
    } else if (v === 0 && 1 / v < 0) {
      out[i] = '-0';
    } else {
      out[i] = v;
    }
  }
  return out;
}

// The float32 bit pattern of one encoded value.
function floatBits(value) {
  if (typeof value === 'number') {
    const f = new Float32Array([value]);
    if (f[0] !== value) throw new Error(`${value} is not a float32 value`);
    return new Uint32Array(f.buffer)[0];
  }
  if (value === 'NaN') return 0x7fc00000;
  if (value === 'Infinity') return 0x7f800000;
  if (value === '-Infinity') return 0xff800000;
  if (value === '-0') return 0x80000000;
  const m = /^NaN:0x([0-9a-f]{8})$/.exec(value);
  if (m) return parseInt(m[1], 16);
  throw new Error(`bad float value ${JSON.stringify(value)}`);
}

function decodeFloats(values) {
  const bits = new Uint32Array(values.length);
  values.forEach((v, i) => {
    bits[i] = floatBits(v);
  });
  return new Float32Array(bits.buffer);
}

function hex(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

// Every tensor of a decoded map, in spec order, in the expected.json form.
async function describeTensors(tfjs, named, specs) {
  const out = [];
  for (const spec of specs) {
    const t = named[spec.name];
    if (t === undefined) throw new Error(`decodeWeights gave no tensor for ${spec.name}`);
    const entry = {name: spec.name, dtype: t.dtype, shape: t.shape};
    if (t.dtype === 'float32') {
      entry.values = encodeFloats(t.dataSync());
    } else if (t.dtype === 'complex64') {
      const re = tfjs.real(t).dataSync();
      const im = tfjs.imag(t).dataSync();
      const both = new Float32Array(re.length * 2);
      for (let i = 0; i < re.length; ++i) {
        both[2 * i] = re[i];
        both[2 * i + 1] = im[i];
      }
      entry.values = encodeFloats(both);
    } else if (t.dtype === 'string') {
      // Raw bytes: a string tensor holds bytes, not necessarily UTF-8.
      entry.values = (await t.bytes()).map(hex);
    } else {
      entry.values = Array.from(t.dataSync());
    }
    out.push(entry);
  }
  return out;
}

// Reads model.json and the weight files its manifest names, joined in order,
// as tfjs-node's file:// loader does (pure tfjs has no file:// loader).
function fileIOHandler(modelJsonPath) {
  return {
    load: async () => {
      const modelJSON = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8'));
      const dir = path.dirname(modelJsonPath);
      const artifacts = {
        modelTopology: modelJSON.modelTopology,
        format: modelJSON.format,
        generatedBy: modelJSON.generatedBy,
        convertedBy: modelJSON.convertedBy,
      };
      if (modelJSON.weightsManifest != null) {
        const buffers = [];
        const specs = [];
        for (const group of modelJSON.weightsManifest) {
          for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
          specs.push(...group.weights);
        }
        const joined = Buffer.concat(buffers);
        artifacts.weightSpecs = specs;
        artifacts.weightData =
            joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
      }
      for (const key of ['trainingConfig', 'signature', 'userDefinedMetadata']) {
        if (modelJSON[key] != null) artifacts[key] = modelJSON[key];
      }
      return artifacts;
    },
  };
}

// Executes a GraphModel on the inputs of a graph_predictions.json (written
// by make_models.js from TF.js's own GraphModel) and requires every output
// equal to the recorded one, bit for bit.
async function checkGraphPredictions(tfjs, model, file) {
  const pred = JSON.parse(fs.readFileSync(file, 'utf8'));
  const inputs = pred.inputs.map((i) => tfjs.tensor(decodeFloats(i.values), i.shape, i.dtype));
  let outputs = model.execute(inputs);
  if (!Array.isArray(outputs)) outputs = [outputs];
  try {
    if (outputs.length !== pred.outputs.length) {
      throw new Error(`the graph model gave ${outputs.length} outputs, not ${pred.outputs.length}`);
    }
    outputs.forEach((o, k) => {
      const want = pred.outputs[k];
      if (JSON.stringify(o.shape) !== JSON.stringify(want.shape)) {
        throw new Error(`graph output ${k} has shape ${o.shape}, not ${want.shape}`);
      }
      const got = encodeFloats(o.dataSync());
      const i = got.findIndex((v, j) => v !== want.values[j]);
      if (i >= 0 || got.length !== want.values.length) {
        throw new Error(`graph output ${k} differs from TF.js's own at value ${i}: ` +
                        `${got[i]} != ${want.values[i]}`);
      }
    });
  } finally {
    tfjs.dispose([...inputs, ...outputs]);
  }
}

module.exports = {
  checkGraphPredictions,
  loadTf,
  encodeFloats,
  decodeFloats,
  floatBits,
  describeTensors,
  fileIOHandler,
  hex
};
