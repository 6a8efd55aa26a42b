// The second way to get the addon: stowage installed somewhere (cmake
// --install into a temporary prefix), the npm package packed (npm pack) and
// installed from the tarball into a fresh project, offline, with the prefix
// given by STOWAGE_PREFIX; the install builds the addon against the
// installed stowage. The project then loads and saves a model, and the
// plugins in use are the installed ones. Without a stowage to build against
// the install fails with a message that says what to do.
// Environment: CMAKE (cmake), STOWAGE_BUILD_DIR (the build to install).
'use strict';

const {test} = require('node:test');
const {execFileSync, spawnSync} = require('child_process');
const fs = require('fs');
const path = require('path');
const h = require('./helpers');
const {assert} = h;

const cmake = h.env('CMAKE');
const pkg = path.resolve(__dirname, '..');

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, {encoding: 'utf8', ...options});
  if (r.status !== 0) {
    assert.fail(`${cmd} ${args.join(' ')} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

// The environment of a user's machine: no addon override from the tests.
function userEnv(extra) {
  const env = {...process.env, ...extra};
  delete env.STOWAGE_NODE_ADDON;
  return env;
}

test('npm install of the packed package builds against an installed stowage', async () => {
  const work = h.tempDir('stowage-pack-');
  const prefix = path.join(work, 'prefix');
  run(cmake, ['--install', h.env('STOWAGE_BUILD_DIR'), '--prefix', prefix]);
  assert.ok(fs.existsSync(path.join(prefix, 'include', 'stowage-host', 'stowage', 'management.hpp')));

  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], {cwd: pkg}));
  const tarball = path.join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  for (const f of ['index.js', 'index.d.ts', 'CMakeLists.txt', 'src/addon.cpp', 'src/async_call.cpp',
                   'scripts/install.js', 'package.json', 'README.md',
                   'node_modules/node-addon-api/napi.h',
                   'node_modules/node-api-headers/include/node_api.h']) {
    assert.ok(files.includes(f), `${f} is not in the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('build/')),
            'tests or build outputs in the tarball');

  const app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'app', private: true}));
  const npmInstall = ['install', tarball, '--offline', '--no-audit', '--no-fund', '--foreground-scripts'];

  // No stowage to build against: a clear failure.
  const missing = spawnSync('npm', npmInstall, {
    cwd: app, encoding: 'utf8',
    env: userEnv({STOWAGE_PREFIX: path.join(work, 'nowhere')}),
  });
  assert.notStrictEqual(missing.status, 0);
  assert.match(missing.stderr + missing.stdout,
               /stowage: the stowage prefix .*nowhere does not exist\./);

  const ccache = spawnSync('ccache', ['--version']).status === 0;
  run('npm', npmInstall, {
    cwd: app,
    env: userEnv({STOWAGE_PREFIX: prefix, ...(ccache ? {CMAKE_CXX_COMPILER_LAUNCHER: 'ccache'} : {})}),
  });
  const addon = path.join(app, 'node_modules', 'stowage', 'build', 'Release', 'stowage.node');
  assert.ok(fs.existsSync(addon), 'the install built no addon');
  // It runs on the installed library, not on the build tree's.
  const libs = run('ldd', [addon]);
  assert.match(libs, new RegExp(`libstowage_core\\.so\\.0 => ${prefix}/lib`));

  const sample = h.fileUrl(path.join(h.sourceDir, 'samples', 'models', 'dense', 'model.json'));
  const script = `
    const stowage = require('stowage');
    (async () => {
      const a = await stowage.io(${JSON.stringify(sample)}).load();
      const r = await stowage.io(${JSON.stringify(h.fileUrl(path.join(work, 'saved')))}).save(a);
      const plugins = await stowage.plugins();
      console.log(JSON.stringify({
        addonPath: stowage.addonPath,
        weightBytes: a.weightData.reduce((n, b) => n + b.byteLength, 0),
        saved: r.modelArtifactsInfo.weightDataBytes,
        file: plugins.find((p) => p.name === 'file').library,
      }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = JSON.parse(run(process.execPath, ['-e', script], {cwd: app, env: userEnv()}));
  assert.strictEqual(out.addonPath, addon);
  assert.ok(out.weightBytes > 0);
  assert.strictEqual(out.saved, out.weightBytes);
  assert.ok(out.file.startsWith(prefix + '/'), `the file plugin came from ${out.file}`);
  assert.ok(fs.existsSync(path.join(work, 'saved', 'model.json')));
});
