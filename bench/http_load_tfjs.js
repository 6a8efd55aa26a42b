#!/usr/bin/env node
// TensorFlow.js's side of bench/http_load_bench.sh: tf.io.http(URL).load()
// (TF.js 4.22.0 from tests/interop/node_modules, fetch in Node). With
// --check, then the same touch of every byte as bench/touch_internal.h (sum of
// little-endian 64-bit words modulo 2^64), to compare with stowage's.
// Usage: node http_load_tfjs.js URL [--check]
'use strict';

const path = require('path');

function touchSum(buffers) {
  // 64-bit sum from 32-bit halves: Numbers stay exact below 2^53.
  let lo = 0;
  let hi = 0;
  for (const b of buffers) {
    if (b.byteLength % 8 !== 0) throw new Error('shard sizes must be multiples of 8 here');
    const u32 = new Uint32Array(b.buffer || b, b.byteOffset || 0, b.byteLength / 4);
    for (let i = 0; i < u32.length; i += 2) {
      lo += u32[i];
      hi += u32[i + 1];
      if ((i & 0xfffff) === 0) {
        hi += Math.floor(lo / 4294967296);
        lo %= 4294967296;
        hi %= 4294967296;
      }
    }
  }
  hi = (hi + Math.floor(lo / 4294967296)) % 4294967296;
  lo %= 4294967296;
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

async function main() {
  const url = process.argv[2];
  const modules = path.join(__dirname, '..', 'tests', 'interop', 'node_modules');
  const tf = require(path.join(modules, '@tensorflow', 'tfjs'));
  await tf.setBackend('cpu');
  const t0 = process.hrtime.bigint();
  const artifacts = await tf.io.http(url).load();
  const t1 = process.hrtime.bigint();
  const buffers = Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData];
  const bytes = buffers.reduce((n, b) => n + b.byteLength, 0);
  let line = `bytes=${bytes} buffers=${buffers.length} load_seconds=${Number(t1 - t0) / 1e9}`;
  if (process.argv.includes('--check')) {
    const sum = touchSum(buffers);
    line += ` sum=${sum} touch_seconds=${Number(process.hrtime.bigint() - t1) / 1e9}`;
  }
  process.stdout.write(line + '\n');
}

main().catch((e) => {
  process.stderr.write(`http_load_tfjs.js: ${e.stack || e}\n`);
  process.exit(1);
});
