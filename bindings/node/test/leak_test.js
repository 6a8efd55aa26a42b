// No leak: 200 cycles of tf.loadLayersModel(stowage.io('file://...')) and
// model.dispose() of a 64 MiB model (16 shards of 4 MiB) keep the resident
// set flat: after the GC, the RSS at the end is within 10 % of the RSS after
// a warm-up, every external ArrayBuffer over stowage's buffers is gone and
// TF.js holds no tensor more than before. Run with --expose-gc.
//   STOWAGE_LEAK_CYCLES  cycles (default 200; the default suite runs 20, the
//                        200 run has the label bench: about 1 s a cycle on
//                        2 loaded cores)
'use strict';

const {test} = require('node:test');
const h = require('./helpers');
const {assert, stowage} = h;

const kMiB = 1 << 20;

function rss() {
  return process.memoryUsage().rss;
}

async function collect() {
  for (let i = 0; i < 3; ++i) {
    global.gc();
    await new Promise((res) => setImmediate(res));
  }
}

test('load/dispose cycles of a 64 MiB model keep RSS flat', async () => {
  assert.strictEqual(typeof global.gc, 'function', 'run with node --expose-gc');
  const cycles = Number(process.env.STOWAGE_LEAK_CYCLES || 200);
  const tf = await h.loadTf();
  const dir = h.tempDir();

  // 4096 x 4096 float32 kernel: 64 MiB (plus a 16 KiB bias).
  const model = tf.sequential();
  model.add(tf.layers.dense({units: 4096, inputShape: [4096], kernelInitializer: 'zeros'}));
  const pattern = new Float32Array(4096 * 4096);
  for (let i = 0; i < pattern.length; ++i) pattern[i] = (i % 1013) / 1013;
  model.layers[0].kernel.write(tf.tensor(pattern, [4096, 4096]));
  const url = h.fileUrl(`${dir}/big`);
  const saved = await model.save(stowage.io(url, {shard_size: 4 * kMiB}));
  assert.ok(saved.modelArtifactsInfo.weightDataBytes >= 64 * kMiB);
  const probe = tf.ones([1, 4096]);
  const want = model.predict(probe).dataSync().slice(0, 8);
  model.dispose();

  const tensorsBefore = tf.memory().numTensors;
  const warmUp = Math.min(20, Math.floor(cycles / 3));
  let warm = 0;
  let peak = 0;
  const samples = [];
  const start = Date.now();
  for (let i = 1; i <= cycles; ++i) {
    const m = await tf.loadLayersModel(stowage.io(`${url}/model.json`));
    if (i === 1 || i === cycles) {
      const out = m.predict(probe);
      assert.deepStrictEqual(out.dataSync().slice(0, 8), want, `cycle ${i} predicts otherwise`);
      out.dispose();
    }
    m.dispose();
    if (i === warmUp) {
      await collect();
      warm = rss();
    }
    peak = Math.max(peak, rss());
    if (i % warmUp === 0) samples.push(Math.round(rss() / kMiB));
  }
  await collect();
  const end = rss();
  const seconds = (Date.now() - start) / 1000;
  process.stdout.write(
      `# ${cycles} cycles in ${seconds.toFixed(1)} s; RSS after warm-up ${Math.round(warm / kMiB)} MiB, ` +
      `at the end ${Math.round(end / kMiB)} MiB (${((end / warm - 1) * 100).toFixed(1)} %), ` +
      `peak ${Math.round(peak / kMiB)} MiB; every ${warmUp} cycles: ${samples.join(' ')} MiB\n`);
  assert.ok(Math.abs(end - warm) <= 0.1 * warm,
            `RSS went from ${warm} to ${end} bytes over ${cycles} cycles`);
  const d = stowage.diagnostics();
  assert.strictEqual(d.externalBuffers, 0, 'external ArrayBuffers still alive');
  assert.strictEqual(d.externalBytes, 0);
  assert.strictEqual(d.activeCalls, 0);
  assert.strictEqual(tf.memory().numTensors, tensorsBefore);
  probe.dispose();
});
