// tsc --noEmit over index.d.ts alone (strict, lib checks on) and over
// types/usage.ts against the real TF.js 4.22 declarations (from
// tests/interop/node_modules): stowage.io() must be accepted by
// tf.loadLayersModel, tf.loadGraphModel and model.save, and misuse refused.
'use strict';

const {execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const pkg = path.resolve(__dirname, '..');
const source = path.resolve(pkg, '..', '..');
const tsc = path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc');
const tfjs = path.join(source, 'tests', 'interop', 'node_modules', '@tensorflow', 'tfjs');
for (const [what, p] of [['typescript (npm ci in bindings/node)', tsc], ['@tensorflow/tfjs (npm ci in tests/interop)', tfjs]]) {
  if (!fs.existsSync(p)) {
    process.stderr.write(`error: ${what} is not installed: ${p}\n`);
    process.exit(2);
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-tsc-'));
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));
const base = {
  strict: true,
  noEmit: true,
  target: 'es2022',
  module: 'commonjs',
  moduleResolution: 'node',
  lib: ['es2022', 'dom'],
  types: ['node'],
  typeRoots: [path.join(pkg, 'node_modules', '@types')],
};
const configs = {
  'the declarations': {compilerOptions: {...base, skipLibCheck: false}, files: [path.join(pkg, 'index.d.ts')]},
  'a TF.js program': {
    compilerOptions: {
      ...base,
      skipLibCheck: true,  // TF.js's own declarations are not ours to check
      baseUrl: dir,
      paths: {'stowage': [path.join(pkg, 'index.d.ts')], '@tensorflow/tfjs': [tfjs]},
    },
    files: [path.join(__dirname, 'types', 'usage.ts')],
  },
};
let failed = 0;
for (const [name, config] of Object.entries(configs)) {
  const file = path.join(dir, `tsconfig.${name.replace(/\W+/g, '_')}.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 1));
  try {
    execFileSync(process.execPath, [tsc, '-p', file], {encoding: 'utf8', stdio: 'pipe'});
    process.stdout.write(`ok   tsc --noEmit: ${name}\n`);
  } catch (e) {
    ++failed;
    process.stdout.write(`FAIL tsc --noEmit: ${name}\n${e.stdout}${e.stderr}\n`);
  }
}
process.exit(failed ? 1 : 0);
