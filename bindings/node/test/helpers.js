// Shared by the Node tests of the binding: real TensorFlow.js, the interop
// models, and the real servers the tests start (moto_server with
// authentication, `stowage serve`, a static file server).
//
// Environment (set by CTest, see tests.cmake):
//   STOWAGE_NODE_ADDON   the addon under test
//   STOWAGE_SOURCE_DIR   the repository
//   STOWAGE_BIN          the stowage command (for `stowage serve`)
//   STOWAGE_INTEROP_DIR  the models make_models.js wrote (interop_generate)
'use strict';

const assert = require('assert');
const {spawn} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function env(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`error: ${name} is not set (the tests run from CTest, see tests.cmake)\n`);
    process.exit(2);
  }
  return value;
}

const sourceDir = path.resolve(env('STOWAGE_SOURCE_DIR'));
const interopDir = path.join(sourceDir, 'tests', 'interop');
const interop = require(path.join(interopDir, 'common.js'));
const serveCommon = require(path.join(interopDir, 'serve_common.js'));
const stowage = require(path.join(sourceDir, 'bindings', 'node'));

let tf = null;
async function loadTf() {
  if (tf === null) tf = await interop.loadTf();  // @tensorflow/tfjs 4.22.0, CPU backend
  return tf;
}

// Temporary folders, removed when the process ends.
const temps = [];
process.on('exit', () => {
  for (const dir of temps) fs.rmSync(dir, {recursive: true, force: true});
});
function tempDir(prefix = 'stowage-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

function fileUrl(p) {
  return 'file://' + path.resolve(p);
}

// The models of the interop set (index.json of make_models.js).
function interopModels() {
  const dir = path.resolve(env('STOWAGE_INTEROP_DIR'));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  return index.models.map((m) => ({
                            ...m,
                            model_json: path.join(dir, m.model_json),
                            expected: path.join(dir, m.expected),
                            predictions: m.predictions && path.join(dir, m.predictions),
                            graph_predictions:
                                m.graph_predictions && path.join(dir, m.graph_predictions),
                            root: dir,
                          }));
}

// Predicts the inputs of a predictions.json and requires the outputs equal
// to the recorded ones, bit for bit (the CPU backend is deterministic).
function checkPredictions(tfjs, model, file, what) {
  const pred = JSON.parse(fs.readFileSync(file, 'utf8'));
  const inputs = pred.inputs.map(
      (i) => tfjs.tensor(
          i.dtype === 'float32' ? interop.decodeFloats(i.values) : i.values, i.shape, i.dtype));
  let outputs = model.predict(inputs.length === 1 ? inputs[0] : inputs);
  if (!Array.isArray(outputs)) outputs = [outputs];
  try {
    assert.strictEqual(outputs.length, pred.outputs.length, `${what}: output count`);
    outputs.forEach((o, k) => {
      assert.deepStrictEqual(o.shape, pred.outputs[k].shape, `${what}: output ${k} shape`);
      assert.deepStrictEqual(interop.encodeFloats(o.dataSync()), pred.outputs[k].values,
                             `${what}: output ${k} differs from TF.js's prediction`);
    });
  } finally {
    tfjs.dispose([...inputs, ...outputs]);
  }
}

// The concatenation of a WeightData as one Buffer (for byte comparisons).
function weightBytes(weightData) {
  if (weightData === undefined) return Buffer.alloc(0);
  const list = Array.isArray(weightData) ? weightData : [weightData];
  return Buffer.concat(list.map((b) => Buffer.from(b)));
}

// ---------------------------------------------------------------- servers

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

// Starts argv and resolves with the first match of `re` in its output.
function startProcess(argv, re, {timeoutMs = 60000, stdin = 'ignore'} = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(argv[0], argv.slice(1), {stdio: [stdin, 'pipe', 'pipe']});
    children.add(proc);
    let seen = '';
    const timer = setTimeout(
        () => reject(new Error(`${argv.join(' ')} did not start in time:\n${seen}`)), timeoutMs);
    const onData = (d) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) {
        clearTimeout(timer);
        proc.stdout.removeListener('data', onData);
        proc.stderr.removeListener('data', onData);
        proc.stdout.resume();
        proc.stderr.resume();
        resolve({proc, match: m});
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited (${code ?? signal}):\n${seen}`));
    });
  });
}

async function stopProcess(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((res) => proc.once('exit', res));
  proc.kill('SIGTERM');
  await exited;
}

// moto_server with signature checking on (plugins/s3/testing), a bucket
// "models", and S3 options for stowage that carry its keys.
async function startMoto() {
  const script = path.join(sourceDir, 'plugins', 's3', 'testing', 's3_test_server.py');
  const {proc, match} = await startProcess(
      ['python3', script, '--auth', '--bucket', 'models'], /^(\{.*"endpoint".*\})$/m,
      {stdin: 'pipe'});
  const info = JSON.parse(match[1]);
  assert.strictEqual(info.auth, true, 'moto_server runs without authentication');
  return {
    info,
    options: {
      endpoint: info.endpoint,
      region: 'us-east-1',
      access_key_id: info.access_key_id,
      secret_access_key: info.secret_access_key,
    },
    stop: async () => {
      proc.stdin.end();  // the script stops everything when stdin closes
      await new Promise((res) => proc.exitCode !== null ? res() : proc.once('exit', res));
    },
  };
}

// `stowage serve --store <url>`.
async function startServe(store, extra = []) {
  const server = await serveCommon.startServe(env('STOWAGE_BIN'), ['--store', store, ...extra]);
  return {url: server.url, stop: () => serveCommon.stopServe(server)};
}

// A static file server (python3 -m http.server) over dir: what TF.js's own
// http loader and stowage's http plugin both read in the graph test.
async function startStatic(dir) {
  const {proc, match} = await startProcess(
      ['python3', '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir],
      /port (\d+)/);
  return {url: `http://127.0.0.1:${match[1]}`, stop: () => stopProcess(proc)};
}

// The threads of this process (Linux).
function threadCount() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  return Number(/^Threads:\s+(\d+)$/m.exec(status)[1]);
}

module.exports = {
  assert,
  stowage,
  loadTf,
  tempDir,
  fileUrl,
  interop,
  interopModels,
  checkPredictions,
  weightBytes,
  startMoto,
  startServe,
  startStatic,
  startProcess,
  stopProcess,
  threadCount,
  sourceDir,
  env,
};
