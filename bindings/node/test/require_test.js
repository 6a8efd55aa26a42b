// README's first command builds into <repo>/build; after it,
// require('<repo>/bindings/node') works with nothing else set: it finds
// <repo>/build/lib/node/stowage.node and the plugins beside the core.
// Environment: STOWAGE_EXPECTED_ADDON (the addon CMake built).
'use strict';

const {execFileSync} = require('child_process');
const assert = require('assert');
const path = require('path');

const env = {...process.env};
delete env.STOWAGE_NODE_ADDON;
const pkg = path.resolve(__dirname, '..');
const sample = path.resolve(pkg, '..', '..', 'samples', 'models', 'dense', 'model.json');
const out = execFileSync(process.execPath, ['-e', `
  const stowage = require(${JSON.stringify(pkg)});
  stowage.io('file://' + ${JSON.stringify(sample)}).load().then((a) => {
    console.log(JSON.stringify({addon: stowage.addonPath, format: a.format}));
  }, (e) => { console.error(e); process.exit(1); });`], {env, encoding: 'utf8'});
const got = JSON.parse(out);
assert.strictEqual(got.addon, path.resolve(process.env.STOWAGE_EXPECTED_ADDON));
assert.strictEqual(got.format, 'layers-model');
console.log(`ok   require('bindings/node') uses ${got.addon}`);
