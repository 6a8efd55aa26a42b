#!/usr/bin/env node
// `npm install stowage`: builds the native addon with CMake against an
// installed stowage (its CMake package, find_package(stowage)), into
// build/Release/stowage.node. The Node-API headers come with the package
// (node-api-headers and node-addon-api are bundled), so nothing is
// downloaded.
//
// Where stowage is installed, first found:
//   STOWAGE_PREFIX=/opt/stowage npm install stowage
//   npm install stowage --stowage-prefix=/opt/stowage
//   CMake's own search (CMAKE_PREFIX_PATH, /usr/local, /usr)
// Other settings: CMAKE (the cmake program), STOWAGE_BUILD_JOBS (default 2).
//
// In the stowage repository the main CMake build builds the addon instead,
// so there this script does nothing.
'use strict';

const {spawnSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const pkg = path.resolve(__dirname, '..');
const build = path.join(pkg, 'build');

function fail(message) {
  process.stderr.write(`\nstowage: ${message}\n\n`);
  process.exit(1);
}

if (fs.existsSync(path.join(pkg, '..', '..', 'core', 'host', 'include', 'stowage', 'registry.hpp'))) {
  process.stdout.write(
      'stowage: in the source tree the addon is built by the main CMake build ' +
      '(cmake --preset default && cmake --build --preset default); nothing to do here.\n');
  process.exit(0);
}

const prefix = process.env.STOWAGE_PREFIX || process.env.npm_config_stowage_prefix || '';
const cmake = process.env.CMAKE || 'cmake';
const jobs = process.env.STOWAGE_BUILD_JOBS || '2';

const configure = [
  '-S', pkg, '-B', build, '-DCMAKE_BUILD_TYPE=Release',
  `-DSTOWAGE_NODE_EXECUTABLE=${process.execPath}`,
];
if (prefix) {
  if (!fs.existsSync(prefix)) fail(`the stowage prefix ${prefix} does not exist.`);
  configure.push(`-DCMAKE_PREFIX_PATH=${path.resolve(prefix)}`);
}

function run(args) {
  const r = spawnSync(cmake, args, {stdio: 'inherit'});
  if (r.error && r.error.code === 'ENOENT') {
    fail(`building the native addon needs CMake (3.25 or newer) and a C++20 compiler; ` +
         `${cmake} was not found. Set CMAKE to its path.`);
  }
  return r.status === 0;
}

process.stdout.write(`stowage: building the native addon against ${
    prefix ? `the stowage installed in ${prefix}` : 'an installed stowage'}\n`);
if (!run(configure)) {
  fail('CMake could not configure the addon. If it could not find the stowage package, ' +
       'install stowage (cmake --install) and give its prefix: ' +
       'STOWAGE_PREFIX=/its/prefix npm install stowage, or npm install --stowage-prefix=/its/prefix.');
}
if (!run(['--build', build, '--parallel', jobs])) fail('building the native addon failed.');
const addon = path.join(build, 'Release', 'stowage.node');
if (!fs.existsSync(addon)) fail(`the build did not produce ${addon}.`);
process.stdout.write(`stowage: built ${addon}\n`);
