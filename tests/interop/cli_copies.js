#!/usr/bin/env node
// Copies every model of a make_models.js folder with the stowage command:
//   OUT/<id>/cli_single    stowage copy file://SRC/model.json file://OUT/<id>/cli_single
//                          --integrity none (byte for byte tfjs-node's files)
//   OUT/<id>/cli_sharded   ... --shard-size 1024 (with file://'s default sha256 digests)
// Usage: node cli_copies.js --stowage BIN --models DIR --out OUT
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    process.stderr.write('usage: node cli_copies.js --stowage BIN --models DIR --out OUT\n');
    process.exit(2);
  }
  return process.argv[i + 1];
}

const bin = arg('--stowage');
const models = path.resolve(arg('--models'));
const out = path.resolve(arg('--out'));
const index = JSON.parse(fs.readFileSync(path.join(models, 'index.json'), 'utf8'));

// Every group lists one SHA-256 per path, each the digest of that file.
function digestsRecorded(folder) {
  const json = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8'));
  return (json.weightsManifest || []).every(
      (g) => Array.isArray(g.sha256) && g.sha256.length === g.paths.length &&
          g.paths.every((p, i) => g.sha256[i] ===
                            crypto.createHash('sha256')
                                .update(fs.readFileSync(path.join(folder, p)))
                                .digest('hex')));
}

let failures = 0;
let copies = 0;
for (const m of index.models) {
  const src = 'file://' + path.join(models, m.model_json);
  for (const [kind, extra] of [['cli_single', ['--integrity', 'none']], ['cli_sharded', ['--shard-size', '1024']]]) {
    const dst = path.join(out, m.id, kind);
    fs.rmSync(dst, {recursive: true, force: true});
    fs.mkdirSync(path.dirname(dst), {recursive: true});
    const argv = ['copy', src, 'file://' + dst, ...extra];
    const r = childProcess.spawnSync(bin, argv, {encoding: 'utf8'});
    if (r.status !== 0) {
      ++failures;
      process.stderr.write(
          `FAIL stowage ${argv.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}\n`);
    } else if (!fs.existsSync(path.join(dst, 'model.json'))) {
      ++failures;
      process.stderr.write(`FAIL stowage ${argv.join(' ')}: no model.json written\n`);
    } else if (kind === 'cli_sharded' && !digestsRecorded(dst)) {
      // file://'s default integrity "sha256": the copies TF.js loads next
      // carry digests, which it must ignore.
      ++failures;
      process.stderr.write(`FAIL stowage ${argv.join(' ')}: digests missing or wrong\n`);
    } else {
      ++copies;
    }
  }
}
process.stdout.write(`${copies} passed, ${failures} failed\n`);
process.exit(failures === 0 ? 0 : 1);
