// Starting and stopping `stowage serve` for the serve interop tests.
'use strict';

const assert = require('assert');
const {spawn, execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (fallback !== undefined) return fallback;
    process.stderr.write(`missing ${name}\n`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Servers still running when this process ends (a failed check) are
// killed with it, so no test leaves one behind.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

// Runs `stowage serve --port 0 ARGS...` and resolves once it printed its
// port (the first line of stdout). The rest of stdout is the access log,
// kept in `log`; stderr is passed through.
function startServe(stowage, args) {
  return new Promise((resolve, reject) => {
    const proc =
        spawn(stowage, ['serve', '--port', '0', ...args], {stdio: ['ignore', 'pipe', 'inherit']});
    const server = {proc, log: [], port: 0, url: '', exited: null};
    let buffer = '';
    running.add(proc);
    const exited = new Promise((res) => proc.on('exit', (code, signal) => {
      running.delete(proc);
      res({code, signal});
    }));
    server.exited = exited;
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (text) => {
      buffer += text;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (server.port === 0) {
          server.port = Number(line);
          server.url = `http://127.0.0.1:${server.port}`;
          resolve(server);
        } else {
          server.log.push(line);
        }
      }
    });
    proc.on('error', reject);
    exited.then(({code, signal}) => {
      if (server.port === 0) reject(new Error(`stowage serve exited (${code ?? signal}) first`));
    });
  });
}

// SIGTERM, then the exit status must be 0 (a graceful stop). The access
// log is complete once this resolves.
async function stopServe(server) {
  server.proc.kill('SIGTERM');
  const {code, signal} = await server.exited;
  await new Promise(
      (res) => server.proc.stdout.closed ? res() : server.proc.stdout.on('close', res));
  assert.strictEqual(code, 0, `stowage serve ended with ${code ?? signal} after SIGTERM`);
}

function verify(stowage, url) {
  return execFileSync(stowage, ['verify', url], {encoding: 'utf8'});
}

module.exports = {
  arg,
  tempDir,
  startServe,
  stopServe,
  verify
};
