// Real TensorFlow.js in headless Chromium against the browser plugin:
//
//   1. browser -> stowage: a page saves models with model.save('localstorage://...')
//      and model.save('indexeddb://...'), exports its storage with the snippets of
//      docs/browser.md, `stowage browser import` brings the files into a profile, and
//      stowage loads every model with every tensor equal (bytes, specs, topology).
//      `stowage browser export` then gives back what the page exported.
//   2. stowage -> browser: stowage saves a model to both stores, `stowage browser
//      export` writes them, the page imports them with the snippets, and
//      tf.loadLayersModel predicts exactly what the original model predicted. The
//      items and records stowage wrote equal what TF.js writes for the same artifacts.
//   3. quota: the largest model TF.js can save to localStorage in Chromium is the
//      largest stowage saves with its default quota; one float more fails in both,
//      and stowage keeps the model that was there (TF.js loses it).
//
// Usage: node browser_chromium.js --stowage EXE --work DIR --docs docs/browser.md
//                                 [--chromium /usr/bin/chromium]
// The page and tf.min.js are served from this folder by python3 -m http.server on
// 127.0.0.1 (a free port), so localStorage and IndexedDB have an origin.
'use strict';

const {spawn, spawnSync} = require('child_process');
const fs = require('fs');
const path = require('path');
const {skipOrFail} = require('./skip');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
for (const need of ['stowage', 'work', 'docs']) {
  if (!args[need]) {
    console.error(`usage: browser_chromium.js --stowage EXE --work DIR --docs FILE [--chromium EXE]`);
    process.exit(2);
  }
}
const chromiumPath = args.chromium || '/usr/bin/chromium';
const work = path.resolve(args.work);

let failures = 0;
function check(ok, what) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}`);
    ++failures;
  }
}

// JSON text with object keys sorted at every level: equality regardless of key order.
function canonical(value) {
  return JSON.stringify(value, (key, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
    }
    return v;
  });
}

function withoutDate(info) {
  const copy = {...info};
  delete copy.dateSaved;
  return copy;
}

function stowage(argv, {mayFail = false} = {}) {
  const r = spawnSync(args.stowage, argv, {encoding: 'utf8', maxBuffer: 1 << 30});
  if (r.status !== 0 && !mayFail) {
    throw new Error(`stowage ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  }
  return r;
}

// The ```js blocks of docs/browser.md: the snippets the page runs.
function documentedSnippets() {
  const text = fs.readFileSync(args.docs, 'utf8');
  const blocks = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  if (blocks.length === 0) throw new Error(`${args.docs} has no js snippets`);
  return blocks.join('\n');
}

function startServer(dir) {
  return new Promise((resolve, reject) => {
    const proc = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1',
                                   '--directory', dir],
                       {stdio: ['ignore', 'pipe', 'ignore']});
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve({proc, port: Number(m[1])});
    });
    proc.on('exit', (code) => reject(new Error(`python3 -m http.server exited (${code})`)));
    setTimeout(() => reject(new Error('python3 -m http.server did not start')), 20000);
  });
}

// A model as stowage's file:// writes it: model.json and weights.bin.
function readFileModel(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const data = fs.readFileSync(path.join(dir, json.weightsManifest[0].paths[0]));
  return {json, data};
}

function writeFileModel(dir, artifacts, data) {
  fs.mkdirSync(dir, {recursive: true});
  const json = {modelTopology: artifacts.modelTopology};
  for (const k of ['format', 'generatedBy', 'convertedBy']) {
    if (artifacts[k] !== undefined) json[k] = artifacts[k];
  }
  json.weightsManifest = [{paths: ['weights.bin'], weights: artifacts.weightSpecs}];
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'weights.bin'), data);
  return path.join(dir, 'model.json');
}

function floatBits(values) {
  return Buffer.from(new Float32Array(values).buffer).toString('hex');
}

async function main() {
  if (!fs.existsSync(chromiumPath)) {
    skipOrFail(`Chromium is not installed at ${chromiumPath} (tests/setup.sh installs ` +
               `the Debian package chromium); the browser interop test cannot run.`);
  }
  let chromium;
  try {
    ({chromium} = require('playwright-core'));
  } catch (e) {
    console.error('error: playwright-core is not installed: run `npm ci` in tests/interop');
    process.exit(2);
  }
  fs.rmSync(work, {recursive: true, force: true});
  fs.mkdirSync(work, {recursive: true});

  const server = await startServer(__dirname);
  const origin = `http://127.0.0.1:${server.port}`;
  const browser = await chromium.launch(
      {executablePath: chromiumPath, args: ['--no-sandbox'], headless: true});
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(`${origin}/browser_page.html`);
    await page.evaluate(() => window.pageReady);
    await page.addScriptTag({content: documentedSnippets()});
    const version = await page.evaluate(() => tf.version.tfjs);
    check(version === '4.22.0', `the page runs TensorFlow.js ${version} in Chromium`);
    await browserToStowage(page, origin);
    await stowageToBrowser(page, origin);
    await quota(page, origin);
  } finally {
    await browser.close();
    server.proc.kill();
  }
  console.log(failures === 0 ? 'all checks passed' : `${failures} checks FAILED`);
  process.exit(failures === 0 ? 0 : 1);
}

// ---- 1. browser -> stowage ---------------------------------------------------------

async function browserToStowage(page, origin) {
  const built = await page.evaluate(async () => {
    const dense = tf.sequential();
    dense.add(tf.layers.dense({units: 8, inputShape: [5], activation: 'relu'}));
    dense.add(tf.layers.dense({units: 3, activation: 'softmax'}));
    const conv = tf.sequential();
    conv.add(tf.layers.conv2d({inputShape: [8, 8, 2], filters: 4, kernelSize: 3}));
    conv.add(tf.layers.batchNormalization());
    conv.add(tf.layers.flatten());
    conv.add(tf.layers.dense({units: 2}));
    conv.setUserDefinedMetadata({labels: ['猫', 'dog'], note: 'é "quoted"'});
    const out = {};
    for (const [name, model] of Object.entries({m: dense, 'nested/conv': conv})) {
      await model.save('localstorage://' + name);
      await model.save('indexeddb://' + name);
      let captured;
      await model.save(tf.io.withSaveHandler(async (a) => {
        captured = a;
        return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
      }));
      let data = captured.weightData;
      if (Array.isArray(data)) data = await new Blob(data).arrayBuffer();
      out[name] = {
        topology: captured.modelTopology,
        specs: captured.weightSpecs,
        data: arrayBufferToBase64(data),
        userDefinedMetadata: captured.userDefinedMetadata,
        weights: model.getWeights().map((w) => Array.from(w.dataSync())),
      };
    }
    return out;
  });
  const lsText = await page.evaluate(() => exportLocalStorage());
  const idbText = await page.evaluate(() => exportIndexedDB());
  fs.writeFileSync(path.join(work, 'page-localstorage.json'), lsText);
  fs.writeFileSync(path.join(work, 'page-indexeddb.json'), idbText);

  const profile = path.join(work, 'profile');
  const where = ['--origin', origin, '--profile', profile];
  stowage(['browser', 'import', '--scheme', 'localstorage', ...where,
           path.join(work, 'page-localstorage.json'), '-q']);
  stowage(['browser', 'import', '--scheme', 'indexeddb', ...where,
           path.join(work, 'page-indexeddb.json'), '-q']);
  const options = JSON.stringify({profile, origin});

  for (const scheme of ['localstorage', 'indexeddb']) {
    const listed = JSON.parse(stowage(['list', `${scheme}://`, '--options', options, '--json']).stdout);
    check(canonical(Object.keys(listed).sort()) ===
              canonical([`${scheme}://m`, `${scheme}://nested/conv`]),
          `${scheme}: stowage lists the page's models`);
    for (const [name, expected] of Object.entries(built)) {
      const url = `${scheme}://${name}`;
      const dir = path.join(work, 'loaded', scheme, name);
      stowage(['copy', url, `file://${dir}`, '--src-options', options, '-q']);
      const {json, data} = readFileModel(dir);
      check(data.equals(Buffer.from(expected.data, 'base64')),
            `${url}: the weight bytes stowage loads are the page's (${data.length} bytes)`);
      check(canonical(json.weightsManifest[0].weights) === canonical(expected.specs),
            `${url}: the weight specs are the page's`);
      check(canonical(json.modelTopology) === canonical(expected.topology),
            `${url}: the topology is the page's`);
      check(canonical(json.userDefinedMetadata) === canonical(expected.userDefinedMetadata),
            `${url}: userDefinedMetadata is the page's`);
      // Every tensor, decoded from the bytes stowage loaded, equals model.getWeights().
      let offset = 0;
      let same = true;
      json.weightsManifest[0].weights.forEach((spec, i) => {
        const n = spec.shape.reduce((a, b) => a * b, 1);
        const got = data.subarray(offset, offset + 4 * n).toString('hex');
        offset += 4 * n;
        if (spec.dtype !== 'float32' || got !== floatBits(expected.weights[i])) same = false;
      });
      check(same && offset === data.length,
            `${url}: all ${expected.weights.length} tensors equal the page's getWeights()`);
    }
  }

  // What stowage exports again is what the page exported.
  const lsBack = stowage(['browser', 'export', '--scheme', 'localstorage', ...where]).stdout;
  check(canonical(JSON.parse(lsBack)) === canonical(JSON.parse(lsText)),
        'localstorage: stowage exports the very items the page exported');
  const idbBack = JSON.parse(stowage(['browser', 'export', '--scheme', 'indexeddb', ...where]).stdout);
  const idbPage = JSON.parse(idbText);
  const byPath = (records) => canonical([...records].sort((a, b) => a.modelPath < b.modelPath ? -1 : 1));
  check(byPath(idbBack.models_store) === byPath(idbPage.models_store) &&
            byPath(idbBack.model_info_store) === byPath(idbPage.model_info_store),
        'indexeddb: stowage exports the very records the page exported');
}

// ---- 2. stowage -> browser ---------------------------------------------------------

async function stowageToBrowser(page, origin) {
  const made = await page.evaluate(async () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({units: 6, inputShape: [4], activation: 'tanh'}));
    m.add(tf.layers.dense({units: 2}));
    const x = tf.tensor2d([[0.1, -0.2, 0.3, 0.4], [1, 2, 3, 4], [-1, 0.5, 0, 2]]);
    const y = Array.from(m.predict(x).dataSync());
    let captured;
    await m.save(tf.io.withSaveHandler(async (a) => {
      captured = a;
      return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
    }));
    let data = captured.weightData;
    if (Array.isArray(data)) data = await new Blob(data).arrayBuffer();
    captured.weightData = data;
    window.reverseArtifacts = captured;
    return {
      y,
      artifacts: {
        modelTopology: captured.modelTopology,
        weightSpecs: captured.weightSpecs,
        format: captured.format,
        generatedBy: captured.generatedBy,
        convertedBy: captured.convertedBy,
      },
      data: arrayBufferToBase64(data),
    };
  });
  const source = writeFileModel(path.join(work, 'reverse-source'), made.artifacts,
                                Buffer.from(made.data, 'base64'));
  const profile = path.join(work, 'profile-reverse');
  const options = JSON.stringify({profile, origin});
  for (const scheme of ['localstorage', 'indexeddb']) {
    stowage(['copy', `file://${source}`, `${scheme}://r`, '--dst-options', options, '-q']);
  }
  // localStorage's sixth item, the digest (indexeddb://r has its digest by default).
  stowage(['copy', `file://${source}`, 'localstorage://rd', '--dst-options', options,
           '--integrity', 'sha256', '-q']);
  const where = ['--origin', origin, '--profile', profile];
  const lsText = stowage(['browser', 'export', '--scheme', 'localstorage', ...where]).stdout;
  const idbFile = path.join(work, 'stowage-indexeddb.json');
  stowage(['browser', 'export', '--scheme', 'indexeddb', ...where, '--out', idbFile, '-q']);
  const idbText = fs.readFileSync(idbFile, 'utf8');

  const result = await page.evaluate(async ({lsText, idbText}) => {
    // Only what the import brings is there.
    localStorage.clear();
    await new Promise((resolve, reject) => {
      const r = indexedDB.deleteDatabase('tensorflowjs');
      r.onsuccess = resolve;
      r.onerror = () => reject(r.error);
    });
    importLocalStorage(lsText);
    await importIndexedDB(idbText);
    const x = tf.tensor2d([[0.1, -0.2, 0.3, 0.4], [1, 2, 3, 4], [-1, 0.5, 0, 2]]);
    const out = {predictions: {}, listed: await tf.io.listModels()};
    for (const url of ['localstorage://r', 'indexeddb://r', 'localstorage://rd']) {
      const model = await tf.loadLayersModel(url);
      out.predictions[url] = Array.from(model.predict(x).dataSync());
    }
    // What the page holds now, digests included, for stowage to import back.
    out.back = {ls: exportLocalStorage(), idb: await exportIndexedDB()};
    // What TF.js itself writes for the same artifacts, to compare.
    await tf.io.getSaveHandlers('localstorage://r_tfjs')[0].save(window.reverseArtifacts);
    await tf.io.getSaveHandlers('indexeddb://r_tfjs')[0].save(window.reverseArtifacts);
    out.items = {};
    for (const name of ['r', 'r_tfjs']) {
      out.items[name] = {};
      for (const part of ['info', 'model_topology', 'weight_specs', 'weight_data', 'model_metadata']) {
        out.items[name][part] = localStorage.getItem(`tensorflowjs_models/${name}/${part}`);
      }
    }
    out.records = JSON.parse(await exportIndexedDB()).models_store;
    return out;
  }, {lsText, idbText});

  for (const url of ['localstorage://r', 'indexeddb://r', 'localstorage://rd']) {
    check(floatBits(result.predictions[url]) === floatBits(made.y),
          `${url}: tf.loadLayersModel of what stowage saved predicts exactly the original's outputs`);
    check(result.listed[url] !== undefined &&
              result.listed[url].weightDataBytes === Buffer.from(made.data, 'base64').length,
          `${url}: tf.io.listModels() lists it with its weightDataBytes`);
  }
  const [ours, theirs] = [result.items.r, result.items.r_tfjs];
  for (const part of ['model_topology', 'weight_specs', 'weight_data', 'model_metadata']) {
    check(ours[part] !== null && ours[part] === theirs[part],
          `localstorage: the ${part} item stowage wrote is byte for byte TF.js's`);
  }
  check(canonical(withoutDate(JSON.parse(ours.info))) === canonical(withoutDate(JSON.parse(theirs.info))) &&
            JSON.stringify(Object.keys(JSON.parse(ours.info))) ===
                JSON.stringify(Object.keys(JSON.parse(theirs.info))),
        'localstorage: the info item is TF.js\'s (keys in order; dateSaved aside)');
  const record = (name) => result.records.find((r) => r.modelPath === name);
  const [recOurs, recTheirs] = [record('r'), record('r_tfjs')];
  check(recOurs && recTheirs &&
            canonical(recOurs.modelArtifacts) === canonical(recTheirs.modelArtifacts) &&
            canonical(withoutDate(recOurs.modelArtifactsInfo)) ===
                canonical(withoutDate(recTheirs.modelArtifactsInfo)),
        'indexeddb: the models_store record stowage wrote is TF.js\'s (dateSaved aside)');

  // The digests TF.js ignored came through the browser: stowage checks them after importing
  // what the page exported.
  const digest = require('crypto').createHash('sha256')
                     .update(Buffer.from(made.data, 'base64')).digest('hex');
  check(recOurs && recOurs.weightDataSha256 === digest,
        'indexeddb: the record in the browser keeps weightDataSha256, the weight data\'s SHA-256');
  const backProfile = path.join(work, 'profile-reverse-back');
  const backWhere = ['--origin', origin, '--profile', backProfile];
  fs.writeFileSync(path.join(work, 'back-localstorage.json'), result.back.ls);
  fs.writeFileSync(path.join(work, 'back-indexeddb.json'), result.back.idb);
  stowage(['browser', 'import', '--scheme', 'localstorage', ...backWhere,
           path.join(work, 'back-localstorage.json'), '-q']);
  stowage(['browser', 'import', '--scheme', 'indexeddb', ...backWhere,
           path.join(work, 'back-indexeddb.json'), '-q']);
  const backOptions = JSON.stringify({profile: backProfile, origin});
  for (const url of ['localstorage://rd', 'indexeddb://r']) {
    const out = stowage(['verify', url, '--options', backOptions]).stdout;
    check(out.endsWith('digests: 1 checked\n'),
          `${url}: back from the browser, stowage checks the digest stowage recorded (${out.trim()})`);
  }
}

// ---- 3. quota -----------------------------------------------------------------------

async function quota(page, origin) {
  // The largest float32 weight count TF.js saves to localStorage in Chromium.
  const found = await page.evaluate(async () => {
    const handler = tf.io.getSaveHandlers('localstorage://q')[0];
    const artifacts = (n) => ({
      modelTopology: {},
      weightSpecs: [{name: 'w', shape: [n], dtype: 'float32'}],
      weightData: new ArrayBuffer(4 * n),
    });
    async function fits(n) {
      localStorage.clear();
      try {
        await handler.save(artifacts(n));
        return true;
      } catch (e) {
        return false;
      }
    }
    let lo = 1, hi = 3000000;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (await fits(mid)) lo = mid; else hi = mid - 1;
    }
    // TF.js's failed overwrite: the model saved before is gone afterwards.
    localStorage.clear();
    await handler.save(artifacts(lo));
    let message = '';
    try {
      await handler.save(artifacts(lo + 1));
    } catch (e) {
      message = e.message;
    }
    const lost = localStorage.getItem('tensorflowjs_models/q/info') === null;
    localStorage.clear();
    return {n: lo, message, lost};
  });
  console.log(`Chromium: the largest model TF.js saves to localStorage has ${found.n} floats`);
  check(found.lost && /^Failed to save model 'q' to local storage/.test(found.message),
        'Chromium + TF.js: a failed overwrite deletes the model saved before (the bug stowage fixes)');

  const profile = path.join(work, 'profile-quota');
  const options = JSON.stringify({profile, origin});
  const model = (n) => writeFileModel(
      path.join(work, `quota-${n}`),
      {modelTopology: {}, weightSpecs: [{name: 'w', shape: [n], dtype: 'float32'}]},
      Buffer.alloc(4 * n));
  stowage(['copy', `file://${model(found.n)}`, 'localstorage://q', '--dst-options', options, '-q']);
  check(true, `stowage saves the ${found.n}-float model with its default quota`);
  const over = stowage(['copy', `file://${model(found.n + 1)}`, 'localstorage://q',
                        '--dst-options', options, '-q'], {mayFail: true});
  check(over.status === 1 && over.stderr.includes("Failed to save model 'q' to local storage") &&
            over.stderr.includes('bytes are free'),
        `stowage refuses ${found.n + 1} floats as Chromium does, saying why: ${over.stderr.trim()}`);
  const kept = path.join(work, 'quota-kept');
  stowage(['copy', 'localstorage://q', `file://${kept}`, '--src-options', options, '-q']);
  check(readFileModel(kept).data.length === 4 * found.n,
        'stowage keeps the model that was saved before the refused save');
  const listed = JSON.parse(stowage(['list', 'localstorage://', '--options', options, '--json']).stdout);
  check(canonical(Object.keys(listed)) === canonical(['localstorage://q']),
        'after the refused save stowage lists no half model');
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
