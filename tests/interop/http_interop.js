#!/usr/bin/env node
// http:// interop with real servers and real TensorFlow.js (4.22.0):
//
//   --mode load   `python3 -m http.server` serves the models TF.js wrote
//                 (make_models.js); stowage copies each one over http into
//                 OUT/<id>/http_load (tfjs_load_check.js then checks them).
//   --mode flask  the Flask receiver of the TF.js documentation
//                 (flask_receiver.py) takes `stowage copy file://... http://.../upload/<id>`,
//                 the multipart POST model.save('http://...') sends, and
//                 stores files byte-identical to TF.js's own upload of the same
//                 artifacts (tf.io.http(url).save); then
//                 TF.js loads what Flask stored, over http from
//                 `python3 -m http.server`, with tf.io.http() and
//                 tf.loadLayersModel(): every value and prediction equal.
//   --mode cache  the same server behind the pull-through cache: stowage copies
//                 each model from cache+http://... into OUT/<id>/cache_fill
//                 (fetched and cached), then again with STOWAGE_OFFLINE=1 into
//                 OUT/<id>/cache_offline, which the server's log shows was
//                 served from the cache alone (tfjs_load_check.js then checks
//                 both).
//
// Usage: node http_interop.js --mode load|flask|cache --stowage BIN --models DIR --out DIR
'use strict';

const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');
const common = require('./common');

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    process.stderr.write(
        'usage: node http_interop.js --mode load|flask|cache --stowage BIN --models DIR --out DIR\n');
    process.exit(2);
  }
  return process.argv[i + 1];
}

const children = [];
process.on('exit', () => children.forEach((c) => c.kill()));

// Starts a server and resolves with its port, read from its output by `re`.
function startServer(argv, re) {
  return new Promise((resolve, reject) => {
    const proc = childProcess.spawn(argv[0], argv.slice(1), {stdio: ['pipe', 'pipe', 'pipe']});
    children.push(proc);
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not start: ${seen}`)), 20000);
    const onData = (d) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve({proc, port: Number(m[1])});
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`${argv.join(' ')} exited (${code}): ${seen}`)));
  });
}

function httpServer(dir) {
  return startServer(['python3', '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1',
                      '--directory', dir], /port (\d+)/);
}

function stowage(bin, argv, env = process.env) {
  const r = childProcess.spawnSync(bin, argv, {encoding: 'utf8', env});
  if (r.status !== 0) {
    throw new Error(`stowage ${argv.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

async function modeLoad(bin, models, out, index) {
  const {port} = await httpServer(models);
  let failures = 0;
  for (const m of index.models) {
    const dst = path.join(out, m.id, 'http_load');
    fs.rmSync(dst, {recursive: true, force: true});
    fs.mkdirSync(path.dirname(dst), {recursive: true});
    const src = `http://127.0.0.1:${port}/${m.model_json}`;
    try {
      // integrity none: the copy must be tfjs-node's files byte for byte.
      stowage(bin, ['copy', src, 'file://' + dst, '--integrity', 'none', '-q']);
      assert.ok(fs.existsSync(path.join(dst, 'model.json')), 'no model.json written');
      process.stdout.write(`ok   ${m.id} ${src}\n`);
    } catch (e) {
      ++failures;
      process.stdout.write(`FAIL ${m.id}: ${e.message}\n`);
    }
  }
  return failures;
}

// python's access log lines ("GET /path HTTP/1.1" 200 -) seen so far.
function requestLog(proc) {
  const log = {text: ''};
  proc.stderr.on('data', (d) => { log.text += d.toString(); });
  log.gets = () => (log.text.match(/"GET [^"]*"/g) || []).length;
  // spawnSync blocks this loop: the lines python wrote meanwhile wait in
  // the pipe until the loop runs again.
  log.settle = () => new Promise((r) => setTimeout(r, 100));
  return log;
}

async function modeCache(bin, models, out, index) {
  const server = await httpServer(models);
  const log = requestLog(server.proc);
  const cacheDir = path.join(out, 'cache-dir');
  fs.rmSync(cacheDir, {recursive: true, force: true});
  const env = {...process.env, STOWAGE_CACHE_DIR: cacheDir};
  delete env.STOWAGE_OFFLINE;
  let failures = 0;
  for (const m of index.models) {
    const src = `cache+http://127.0.0.1:${server.port}/${m.model_json}`;
    try {
      const fill = path.join(out, m.id, 'cache_fill');
      const offline = path.join(out, m.id, 'cache_offline');
      for (const dst of [fill, offline]) {
        fs.rmSync(dst, {recursive: true, force: true});
        fs.mkdirSync(path.dirname(dst), {recursive: true});
      }
      // integrity none: the copies must be tfjs-node's files byte for byte.
      const before = log.gets();
      stowage(bin, ['copy', src, 'file://' + fill, '--integrity', 'none', '-q'], env);
      // python logs each request before it answers: all are in the pipe.
      await log.settle();
      assert.ok(log.gets() > before, `the fill made no request (${log.gets()} GETs logged)`);
      const filled = log.gets();
      stowage(bin, ['copy', src, 'file://' + offline, '--integrity', 'none', '-q'],
              {...env, STOWAGE_OFFLINE: '1'});
      await log.settle();
      assert.strictEqual(log.gets(), filled, 'the offline copy reached the server');
      process.stdout.write(`ok   ${m.id} ${src}\n`);
    } catch (e) {
      ++failures;
      process.stdout.write(`FAIL ${m.id}: ${e.message}\n`);
    }
  }
  return failures;
}

async function checkWithTfjs(tf, models, entry, url) {
  // tf.io.http is TF.js's own http loader (fetch in Node).
  const artifacts = await tf.io.http(url).load();
  const named = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  const got = await common.describeTensors(tf, named, artifacts.weightSpecs);
  Object.values(named).forEach((t) => t.dispose());
  const expected = JSON.parse(fs.readFileSync(path.join(models, entry.expected), 'utf8'));
  assert.deepStrictEqual(got, expected.weights, 'decoded weights differ');
  if (entry.graph_predictions) {
    const graph = await tf.loadGraphModel(url);
    await common.checkGraphPredictions(tf, graph, path.join(models, entry.graph_predictions));
    graph.dispose();
  }
  if (!entry.predictions) return;
  const model = await tf.loadLayersModel(url);
  const pred = JSON.parse(fs.readFileSync(path.join(models, entry.predictions), 'utf8'));
  const inputs = pred.inputs.map(
      (i) => tf.tensor(
          i.dtype === 'float32' ? common.decodeFloats(i.values) : i.values, i.shape, i.dtype));
  let outputs = model.predict(inputs.length === 1 ? inputs[0] : inputs);
  if (!Array.isArray(outputs)) outputs = [outputs];
  assert.strictEqual(outputs.length, pred.outputs.length, 'output count');
  outputs.forEach((o, k) => {
    assert.deepStrictEqual(common.encodeFloats(o.dataSync()), pred.outputs[k].values,
                           `output ${k} differs from TF.js's prediction on the original`);
  });
  tf.dispose([...inputs, ...outputs]);
  model.dispose();
}

async function modeFlask(bin, models, out, index) {
  const store = path.join(out, 'flask');
  fs.rmSync(store, {recursive: true, force: true});
  fs.mkdirSync(store, {recursive: true});
  const flask = await startServer(
      ['python3', path.join(__dirname, 'flask_receiver.py'), '--dir', store], /PORT (\d+)/);
  const tf = await common.loadTf();
  let failures = 0;
  const uploaded = [];
  for (const m of index.models) {
    const src = 'file://' + path.join(models, m.model_json);
    const dst = `http://127.0.0.1:${flask.port}/upload/${m.id}`;
    try {
      // The upload endpoint cannot be read back, hence --no-verify.
      const report = JSON.parse(stowage(bin, ['copy', src, dst, '--no-verify', '--json']));
      assert.strictEqual(report.responses[0].status, 200, 'Flask answered ' + report.responses);
      assert.deepStrictEqual(JSON.parse(report.responses[0].body).files,
                             ['model.json', 'model.weights.bin']);
      const stored = JSON.parse(fs.readFileSync(path.join(store, m.id, 'model.json'), 'utf8'));
      assert.deepStrictEqual(stored.weightsManifest.map((g) => g.paths),
                             [['./model.weights.bin']], 'manifest paths');
      // TF.js's own http save of the same artifacts gives the same files.
      const artifacts = await common.fileIOHandler(path.join(models, m.model_json)).load();
      await tf.io.http(`http://127.0.0.1:${flask.port}/upload/by-tfjs/${m.id}`).save(artifacts);
      for (const f of ['model.json', 'model.weights.bin']) {
        assert.ok(fs.readFileSync(path.join(store, m.id, f))
                      .equals(fs.readFileSync(path.join(store, 'by-tfjs', m.id, f))),
                  `${f} differs from what TF.js's own model.save('http://...') uploads`);
      }
      uploaded.push(m);
    } catch (e) {
      ++failures;
      process.stdout.write(`FAIL upload ${m.id}: ${e.message}\n`);
    }
  }
  const served = await httpServer(store);
  for (const m of uploaded) {
    const url = `http://127.0.0.1:${served.port}/${m.id}/model.json`;
    try {
      await checkWithTfjs(tf, models, m, url);
      process.stdout.write(`ok   ${m.id}: saved to Flask by stowage, loaded by TF.js\n`);
    } catch (e) {
      ++failures;
      process.stdout.write(`FAIL ${m.id} ${url}: ${e.message.split('\n')[0]}\n`);
    }
  }
  return failures;
}

async function main() {
  const mode = arg('--mode');
  const bin = path.resolve(arg('--stowage'));
  const models = path.resolve(arg('--models'));
  const out = path.resolve(arg('--out'));
  const index = JSON.parse(fs.readFileSync(path.join(models, 'index.json'), 'utf8'));
  const modes = {load: modeLoad, flask: modeFlask, cache: modeCache};
  if (!modes[mode]) {
    process.stderr.write(`http_interop.js: unknown --mode ${mode} (load, flask or cache)\n`);
    process.exit(2);
  }
  const failures = await modes[mode](bin, models, out, index);
  process.stdout.write(`${index.models.length - failures} passed, ${failures} failed\n`);
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`http_interop.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
