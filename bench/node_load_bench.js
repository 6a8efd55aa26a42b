#!/usr/bin/env node
// The Node binding against TensorFlow.js's own loaders, same model, same run:
//
//   http   tf.loadLayersModel(stowage.io('http://.../model.json'))
//          vs tf.loadLayersModel('http://.../model.json') (TF.js's fetch loader),
//          both from one `stowage serve` over the model's folder;
//          targets: >= 5x faster, peak RSS <= 0.6x TF.js's.
//   file   tf.loadLayersModel(stowage.io('file://.../model.json'))
//          vs fs.readFile of every file + tf.io.fromMemory (tfjs-node's file://
//          loader, which pure TF.js lacks); target: >= 1.5x faster.
//
// The model: 16 Dense layers of 2048 x 2048 float32 (256 MiB, BENCH_MIB
// changes it) saved by stowage in 64 shards. Every load runs in a fresh
// process (bench/node_load_one.js), so peak RSS (getrusage) is the load's
// own; REPS rounds (default 3), the order of the loaders alternating between
// rounds; medians count. Each loader also runs as the IOHandler's load()
// alone (no model built), which shows the I/O apart from TF.js's decoding.
// Every loaded model must predict the same outputs, or the bench fails.
//
// Usage: node bench/node_load_bench.js --stowage BUILD/bin/stowage
//        [--addon BUILD/lib/node/stowage.node] [--dir DATA_DIR]
'use strict';

const {execFileSync, spawn} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback !== undefined) return fallback;
  process.stderr.write(`usage: node node_load_bench.js --stowage BIN [--addon FILE] [--dir DIR]\n`);
  process.exit(2);
}

const stowageBin = path.resolve(arg('--stowage'));
const addon = path.resolve(arg('--addon', path.join(path.dirname(stowageBin), '..', 'lib', 'node', 'stowage.node')));
const dataDir = path.resolve(arg('--dir', path.join(path.dirname(stowageBin), '..', 'bench-node')));
const reps = Number(process.env.REPS || 3);
const mib = Number(process.env.BENCH_MIB || 256);
process.env.STOWAGE_NODE_ADDON = addon;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function makeModel(dir) {
  const marker = path.join(dir, `model-${mib}MiB.done`);
  if (fs.existsSync(marker)) return;
  fs.rmSync(dir, {recursive: true, force: true});
  fs.mkdirSync(dir, {recursive: true});
  const tf = require(path.join(root, 'tests', 'interop', 'node_modules', '@tensorflow', 'tfjs'));
  await tf.setBackend('cpu');
  const stowage = require(path.join(root, 'bindings', 'node'));
  const layers = Math.max(1, Math.round(mib / 16));
  const model = tf.sequential();
  for (let i = 0; i < layers; ++i) {
    model.add(tf.layers.dense({
      units: 2048, activation: 'tanh', kernelInitializer: 'zeros',
      ...(i === 0 ? {inputShape: [2048]} : {}),
    }));
  }
  const kernel = new Float32Array(2048 * 2048);
  model.layers.forEach((layer, l) => {
    for (let i = 0; i < kernel.length; ++i) kernel[i] = (((i * 7919 + l * 104729) % 2003) - 1001) / 1e6;
    const t = tf.tensor(kernel, [2048, 2048]);
    layer.kernel.write(t);
    t.dispose();
  });
  const total = layers * (2048 * 2048 + 2048) * 4;
  const shard = Math.ceil(total / 64 / 4) * 4;
  await model.save(stowage.io(`file://${dir}/models/big`, {shard_size: shard}));
  model.dispose();
  fs.writeFileSync(marker, '');
}

function startServe(store) {
  return new Promise((resolve, reject) => {
    const proc = spawn(stowageBin, ['serve', '--port', '0', '--store', store, '--quiet'],
                       {stdio: ['ignore', 'pipe', 'inherit']});
    proc.stdout.once('data', (d) => resolve({proc, port: Number(String(d).split('\n')[0])}));
    proc.on('error', reject);
    proc.on('exit', (code) => reject(new Error(`stowage serve exited (${code})`)));
  });
}

function measure(mode, where, handlerOnly) {
  const args = [path.join(__dirname, 'node_load_one.js'), mode, where];
  if (handlerOnly) args.push('--handler-only');
  const out = execFileSync(process.execPath, args, {encoding: 'utf8', maxBuffer: 1 << 20});
  return JSON.parse(out.trim().split('\n').pop());
}

async function main() {
  await makeModel(dataDir);
  const serve = await startServe(`file://${dataDir}/models`);
  process.on('exit', () => serve.proc.kill());
  const httpUrl = `http://127.0.0.1:${serve.port}/models/big/model.json`;
  const file = path.join(dataDir, 'models', 'big', 'model.json');
  const shards = JSON.parse(fs.readFileSync(file, 'utf8')).weightsManifest.flatMap((g) => g.paths);
  const bytes = shards.reduce((n, p) => n + fs.statSync(path.join(path.dirname(file), p)).size, 0);

  const cases = [
    ['http', 'stowage', httpUrl], ['http', 'tfjs-http', httpUrl],
    ['file', 'stowage', `file://${file}`], ['file', 'tfjs-fs', file],
  ];
  const results = {};
  // One untimed round warms the page cache and the server.
  for (const [, mode, where] of cases) measure(mode, where, true);
  for (let r = 0; r < reps; ++r) {
    const order = r % 2 ? [...cases].reverse() : cases;
    for (const handlerOnly of [false, true]) {
      for (const [kind, mode, where] of order) {
        const m = measure(mode, where, handlerOnly);
        const key = `${kind} ${mode} ${m.what}`;
        (results[key] = results[key] || []).push(m);
      }
    }
  }
  serve.proc.kill();

  // Every full load predicts the same.
  const sums = Object.entries(results).filter(([k]) => k.endsWith('loadLayersModel'))
                   .flatMap(([, ms]) => ms.map((m) => JSON.stringify(m.checksum)));
  if (new Set(sums).size !== 1) throw new Error(`the loaders disagree: ${[...new Set(sums)].join(' ')}`);

  const med = (key, field) => median(results[key].map((m) => m[field]));
  const line = (key) => {
    const ms = results[key].map((m) => m.ms.toFixed(0)).join(' ');
    return `  ${key.padEnd(44)} median ${med(key, 'ms').toFixed(0).padStart(6)} ms  cpu ${
        med(key, 'cpuMs').toFixed(0).padStart(6)} ms  peak RSS ${med(key, 'peakMiB').toFixed(0).padStart(5)} MiB` +
        ` (before ${med(key, 'rssBeforeMiB').toFixed(0)})  runs: ${ms}`;
  };
  const ratio = (a, b, field) => (med(a, field) / med(b, field)).toFixed(2);
  const grow = (key) => med(key, 'peakMiB') - med(key, 'rssBeforeMiB');

  console.log(`node_load_bench: ${new Date().toISOString()}, ${os.cpus().length} cores, load average ${
      os.loadavg().map((x) => x.toFixed(1)).join(' ')}, node ${process.version}`);
  console.log(`model: ${(bytes / 1048576).toFixed(1)} MiB of weights in ${shards.length} shards; ${reps} rounds`);
  for (const key of Object.keys(results).sort()) console.log(line(key));
  for (const what of ['loadLayersModel', 'load()']) {
    const sh = `http stowage ${what}`, th = `http tfjs-http ${what}`;
    const sf = `file stowage ${what}`, tfs = `file tfjs-fs ${what}`;
    console.log(`${what}:`);
    console.log(`  http: stowage is ${ratio(th, sh, 'ms')}x faster than TF.js's loader (target >= 5), ` +
                `${ratio(th, sh, 'cpuMs')}x in CPU time; peak RSS ${ratio(sh, th, 'peakMiB')}x TF.js's ` +
                `(target <= 0.6), growth over the start ${(grow(sh) / grow(th)).toFixed(2)}x`);
    console.log(`  file: stowage is ${ratio(tfs, sf, 'ms')}x faster than fs.readFile + fromMemory ` +
                `(target >= 1.5), ${ratio(tfs, sf, 'cpuMs')}x in CPU time; peak RSS ${ratio(sf, tfs, 'peakMiB')}x`);
  }
}

main().catch((e) => {
  process.stderr.write(`node_load_bench.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
