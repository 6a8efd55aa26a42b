#!/usr/bin/env node
// One measured load for bench/node_load_bench.js, in a fresh process so its
// peak RSS is its own. Prints one JSON line:
//   {mode, what, ms, cpuMs, rssBeforeMiB, peakMiB, checksum}
// Usage: node node_load_one.js MODE URL_OR_PATH [--handler-only]
//   MODE stowage        tf.loadLayersModel(stowage.io(URL))
//        tfjs-http      tf.loadLayersModel(URL)            (TF.js's http loader, fetch)
//        tfjs-fs        fs.readFile of model.json and every shard, joined as
//                       tfjs-node's file:// loader does, then tf.io.fromMemory
//   --handler-only      only the IOHandler's load() (no model built)
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');

async function tfjsFsArtifacts(file) {
  const modelJSON = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  const dir = path.dirname(file);
  const buffers = [];
  const specs = [];
  for (const group of modelJSON.weightsManifest) {
    for (const p of group.paths) buffers.push(await fs.promises.readFile(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const joined = Buffer.concat(buffers);
  return {
    modelTopology: modelJSON.modelTopology,
    format: modelJSON.format,
    generatedBy: modelJSON.generatedBy,
    convertedBy: modelJSON.convertedBy,
    weightSpecs: specs,
    weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength),
  };
}

async function main() {
  const [mode, where] = process.argv.slice(2);
  const handlerOnly = process.argv.includes('--handler-only');
  const tf = require(path.join(root, 'tests', 'interop', 'node_modules', '@tensorflow', 'tfjs'));
  await tf.setBackend('cpu');
  const stowage = require(path.join(root, 'bindings', 'node'));
  const probe = tf.ones([1, 2048]);
  const rssBefore = process.memoryUsage().rss;

  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let result;
  if (mode === 'stowage') {
    const h = stowage.io(where);
    result = handlerOnly ? await h.load() : await tf.loadLayersModel(h);
  } else if (mode === 'tfjs-http') {
    result = handlerOnly ? await tf.io.http(where).load() : await tf.loadLayersModel(where);
  } else if (mode === 'tfjs-fs') {
    const a = await tfjsFsArtifacts(where);
    result = handlerOnly ? a : await tf.loadLayersModel(tf.io.fromMemory(a));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  const t1 = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);

  let checksum;
  if (handlerOnly) {
    const list = Array.isArray(result.weightData) ? result.weightData : [result.weightData];
    checksum = list.reduce((n, b) => n + b.byteLength, 0);
  } else {
    const out = result.predict(probe);
    checksum = Array.from(out.dataSync().slice(0, 4));
    out.dispose();
  }
  process.stdout.write(JSON.stringify({
    mode,
    what: handlerOnly ? 'load()' : 'loadLayersModel',
    ms: Number(t1 - t0) / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssBeforeMiB: rssBefore / 1048576,
    peakMiB: process.resourceUsage().maxRSS / 1024,
    checksum,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`node_load_one.js: ${e.stack || e}\n`);
  process.exit(1);
});
