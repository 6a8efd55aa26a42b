// stowage for TensorFlow.js in Node: every stowage URL scheme as a TF.js
// IOHandler, plus model management.
//
//   const tf = require('@tensorflow/tfjs');
//   const stowage = require('stowage');
//   const model = await tf.loadLayersModel(stowage.io('s3://bucket/models/m/model.json'));
//   await model.save(stowage.io('file:///srv/models/m'));
//
// Every call runs on a thread of its own inside the native addon; the event
// loop never waits for I/O. Errors are StowageError (an Error) with .code,
// .retryable and .url. docs/node.md describes the whole API.
'use strict';

const fs = require('fs');
const path = require('path');
const util = require('util');
const {isMainThread} = require('worker_threads');

// The codes of the host's errors (stowage::ErrorCode), by number.
const kCodes = [
  'OK', 'NOT_FOUND', 'INVALID_ARGUMENT', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'UNAVAILABLE',
  'DATA_LOSS', 'RESOURCE_EXHAUSTED', 'CANCELLED', 'DEADLINE_EXCEEDED', 'UNIMPLEMENTED', 'INTERNAL',
];

class StowageError extends Error {
  constructor(code, message, {retryable = false, url, cause} = {}) {
    super(message, cause === undefined ? undefined : {cause});
    this.name = 'StowageError';
    this.code = code;
    this.retryable = retryable;
    if (url) this.url = url;
  }
}

// ---------------------------------------------------------------- the addon

// Where the addon may be, in order: STOWAGE_NODE_ADDON (only that, when
// set); the package's own build (npm install against an installed
// stowage); the repository's default build folder (<repo>/build).
function addonCandidates() {
  if (process.env.STOWAGE_NODE_ADDON) return [path.resolve(process.env.STOWAGE_NODE_ADDON)];
  return [
    path.join(__dirname, 'build', 'Release', 'stowage.node'),
    path.join(__dirname, '..', '..', 'build', 'lib', 'node', 'stowage.node'),
  ];
}

function loadAddon() {
  const candidates = addonCandidates();
  for (const file of candidates) {
    if (fs.existsSync(file)) return {native: require(file), addonPath: file};
  }
  throw new Error(
      'stowage: the native addon (stowage.node) was not found. Looked at:\n  ' +
      candidates.join('\n  ') +
      '\nIn the stowage repository it is built by the main CMake build ' +
      '(`cmake --preset default && cmake --build --preset default`); an npm install builds it against an ' +
      'installed stowage (set STOWAGE_PREFIX or `npm install --stowage-prefix=DIR`). ' +
      'STOWAGE_NODE_ADDON names the file directly. See docs/node.md.');
}

const {native, addonPath} = loadAddon();
native.setup((code, retryable, message, url) => {
  return new StowageError(kCodes[code] || 'INTERNAL', message, {retryable, url});
}, isMainThread);

// ---------------------------------------------------------------- arguments

function describe(name, url) {
  return url === undefined ? `stowage.${name}()` : `stowage.${name}(${JSON.stringify(url)})`;
}

function checkUrl(url, where) {
  if (typeof url !== 'string' || url === '') {
    throw new TypeError(`${where}: the URL must be a non-empty string, not ${util.inspect(url)}`);
  }
}

function isAbortSignal(s) {
  return s !== null && typeof s === 'object' && typeof s.aborted === 'boolean' &&
      typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function';
}

// Plugin options must survive JSON: a function, symbol, bigint or undefined
// would be dropped silently by JSON.stringify, so it is refused instead.
function checkJson(value, where, at) {
  const t = typeof value;
  if (t === 'function' || t === 'symbol' || t === 'bigint' || t === 'undefined') {
    let hint = '';
    if (at === 'weightUrlConverter') {
      hint = ' (TF.js\'s weightUrlConverter is not supported; the http plugin takes ' +
          '"weight_path_prefix")';
    }
    throw new StowageError(
        'INVALID_ARGUMENT',
        `${where}: option '${at}' is a ${t}; plugin options must be JSON values${hint}`);
  }
  if (t === 'number' && !Number.isFinite(value)) {
    throw new StowageError('INVALID_ARGUMENT', `${where}: option '${at}' is ${value}`);
  }
  if (value === null || t !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkJson(v, where, `${at}[${i}]`));
  } else {
    for (const [k, v] of Object.entries(value)) checkJson(v, where, at ? `${at}.${k}` : k);
  }
}

function pluginOptions(options, where, name = 'options') {
  if (options === undefined || options === null) return '{}';
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where}: ${name} must be an object, not ${util.inspect(options)}`);
  }
  checkJson(options, where, '');
  return JSON.stringify(options);
}

// {onProgress, signal, ...pluginOptions} -> the three parts.
function callOptions(options, where, allowed = ['onProgress', 'signal']) {
  if (options === undefined || options === null) return {json: '{}'};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object, not ${util.inspect(options)}`);
  }
  const {onProgress, signal, ...rest} = options;
  if (onProgress !== undefined) {
    if (!allowed.includes('onProgress')) {
      throw new TypeError(`${where}: onProgress is not an option of this call`);
    }
    if (typeof onProgress !== 'function') {
      throw new TypeError(`${where}: onProgress must be a function (fraction) => void`);
    }
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new TypeError(`${where}: signal must be an AbortSignal`);
  }
  return {json: pluginOptions(rest, where), onProgress, signal};
}

// Runs one native call: start(onProgress) -> {promise, cancel}. An aborted
// signal cancels it; the promise settles once the call's thread has ended.
function run(what, url, {onProgress, signal}, start) {
  if (signal && signal.aborted) {
    return Promise.reject(new StowageError(
        'CANCELLED', `${what} '${url}' was cancelled before it started`,
        {url, cause: signal.reason}));
  }
  let call;
  try {
    call = start(onProgress);
  } catch (e) {
    return Promise.reject(e);
  }
  if (!signal) return call.promise;
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, {once: true});
  return call.promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        return value;
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        if (error instanceof StowageError && error.code === 'CANCELLED' && signal.aborted &&
            error.cause === undefined) {
          error.cause = signal.reason;
        }
        throw error;
      });
}

// ------------------------------------------------------- artifacts and info

function parseInfo(json) {
  const info = JSON.parse(json);
  info.dateSaved = new Date(info.dateSaved);
  return info;
}

// The artifacts of a load, with the keys in the order TF.js's loaders use
// (getModelArtifactsForJSON); weightData is one ArrayBuffer per weight file.
function toArtifacts(result) {
  const m = JSON.parse(result.json);
  const a = {
    modelTopology: m.modelTopology,
    format: m.format,
    generatedBy: m.generatedBy,
    convertedBy: m.convertedBy,
  };
  if (m.trainingConfig != null) a.trainingConfig = m.trainingConfig;
  if (m.weightSpecs != null) a.weightSpecs = m.weightSpecs;
  if (result.weightData !== undefined) a.weightData = result.weightData;
  for (const key of ['signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature']) {
    if (m[key] != null) a[key] = m[key];
  }
  return a;
}

const kArtifactKeys = [
  'modelTopology', 'format', 'generatedBy', 'convertedBy', 'trainingConfig',
  'userDefinedMetadata', 'signature', 'modelInitializer', 'initializerSignature', 'weightSpecs',
];

function isBinary(x) {
  return util.types.isArrayBuffer(x) || ArrayBuffer.isView(x);
}

// Everything but the weight bytes, as JSON text (what JSON.stringify gives
// is what TF.js measures for the SaveResult).
function artifactsJson(artifacts, where) {
  if (artifacts === null || typeof artifacts !== 'object') {
    throw new TypeError(`${where}: the artifacts must be an object (TF.js ModelArtifacts)`);
  }
  if (isBinary(artifacts.modelTopology)) {
    throw new StowageError(
        'INVALID_ARGUMENT',
        `${where} does not support saving model topology in binary formats yet.`);
  }
  const out = {};
  for (const key of kArtifactKeys) {
    if (artifacts[key] !== undefined) out[key] = artifacts[key];
  }
  return JSON.stringify(out);
}

function toArrayBuffer(chunk) {
  if (util.types.isArrayBuffer(chunk)) return chunk;
  if (ArrayBuffer.isView(chunk)) {
    const {buffer, byteOffset, byteLength} = chunk;
    if (util.types.isArrayBuffer(buffer) && byteOffset === 0 && byteLength === buffer.byteLength) {
      return buffer;
    }
    return buffer.slice(byteOffset, byteOffset + byteLength);
  }
  throw new TypeError('a weight stream gave a chunk that is not bytes');
}

// TF.js's WeightData as a list of ArrayBuffers (undefined: no weight data).
// A stream (getWeightStream, from TF.js's streamWeights loads) is read in.
async function weightBuffers(artifacts, where) {
  let data = artifacts.weightData;
  if (data == null && typeof artifacts.getWeightStream === 'function') {
    data = [];
    const reader = artifacts.getWeightStream().getReader();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      data.push(toArrayBuffer(value));
    }
  }
  if (data == null) return undefined;
  if (util.types.isArrayBuffer(data)) return [data];
  if (Array.isArray(data) && data.every((b) => util.types.isArrayBuffer(b))) return data.slice();
  throw new TypeError(
      `${where}: weightData must be an ArrayBuffer or an array of ArrayBuffers (TF.js WeightData)`);
}

// The http plugin reports each request's answer; TF.js's SaveResult holds
// fetch Responses.
function toResponses(json) {
  let list;
  try {
    list = JSON.parse(json);
  } catch (e) {
    return undefined;
  }
  if (!Array.isArray(list) || typeof Response !== 'function' ||
      !list.every((r) => r && typeof r.status === 'number')) {
    return undefined;
  }
  return list.map((r) => {
    const nullBody = [101, 204, 205, 304].includes(r.status);
    const response = new Response(nullBody ? null : (r.body ?? ''),
                                  {status: r.status, statusText: r.statusText || ''});
    if (typeof r.url === 'string') Object.defineProperty(response, 'url', {value: r.url});
    return response;
  });
}

function toSaveResult(result) {
  const info = parseInfo(result.info);
  // TF.js's getModelArtifactsInfoForJSON gives the key with the value
  // undefined when weightData is [] (CompositeArrayBuffer quirk, spec §2.6).
  if (!('weightDataBytes' in info)) info.weightDataBytes = undefined;
  const out = {modelArtifactsInfo: info};
  if (result.responses !== undefined) {
    const responses = toResponses(result.responses);
    if (responses) out.responses = responses;
  }
  return out;
}

// ---------------------------------------------------------------- the API

const kOptions = Symbol('options');

// A TF.js IOHandler for one URL: tf.loadLayersModel(h), tf.loadGraphModel(h),
// model.save(h), or h.load() / h.save(artifacts) directly.
class StowageIOHandler {
  constructor(url, options) {
    const where = describe('io', url);
    checkUrl(url, where);
    this.url = url;
    this[kOptions] = callOptions(options, where);
    this.load = this.load.bind(this);
    this.save = this.save.bind(this);
  }

  load() {
    const o = this[kOptions];
    return run('Loading', this.url, o,
               (p) => native.load(this.url, o.json, p)).then(toArtifacts);
  }

  async save(artifacts) {
    const where = `${describe('io', this.url)}.save()`;
    const o = this[kOptions];
    const json = artifactsJson(artifacts, where);
    const weights = await weightBuffers(artifacts, where);
    const result = await run('Saving to', this.url, o,
                             (p) => native.save(this.url, o.json, json, weights, p));
    return toSaveResult(result);
  }
}

function io(url, options) {
  return new StowageIOHandler(url, options);
}

function transfer(name, src, dst, options) {
  const where = describe(name, src);
  checkUrl(src, where);
  checkUrl(dst, where);
  if (options !== undefined && options !== null &&
      (typeof options !== 'object' || Array.isArray(options))) {
    throw new TypeError(`${where}: options must be an object`);
  }
  const {sourceOptions, destinationOptions, verifyUrl, onProgress, signal, ...unknown} =
      options || {};
  const extra = Object.keys(unknown);
  if (extra.length) {
    throw new StowageError(
        'INVALID_ARGUMENT',
        `${where}: unknown option '${extra[0]}' (options are sourceOptions, ` +
            'destinationOptions, verifyUrl, onProgress and signal)');
  }
  if (verifyUrl !== undefined) checkUrl(verifyUrl, `${where}: verifyUrl`);
  const call = callOptions({onProgress, signal}, where);
  const srcJson = pluginOptions(sourceOptions, where, 'sourceOptions');
  const dstJson = pluginOptions(destinationOptions, where, 'destinationOptions');
  const what = name === 'move' ? 'Moving' : 'Copying';
  return run(what, src, call,
             (p) => native.transfer(src, dst, srcJson, dstJson, name === 'move', verifyUrl || '',
                                    p))
      .then((r) => parseInfo(r.info));
}

async function copy(src, dst, options) {
  return transfer('copy', src, dst, options);
}

async function move(src, dst, options) {
  return transfer('move', src, dst, options);
}

// list(): TF.js's listModels() with no URL, the default locations (the
// config's "list_locations", else localstorage://, indexeddb://, memory://).
async function list(url, options) {
  const where = describe('list', url);
  if (url !== undefined) checkUrl(url, where);
  const o = callOptions(options, where, ['signal']);
  if (url === undefined && o.json !== '{}') {
    throw new TypeError(`${where}: plugin options need a URL; without one the config's ` +
                        'settings for each default location apply');
  }
  const rows = await run('Listing', url === undefined ? 'the default locations' : url, o,
                         () => native.list(url === undefined ? '' : url, o.json));
  const out = {};
  for (const [u, info] of rows) out[u] = parseInfo(info);
  return out;
}

async function remove(url, options) {
  const where = describe('remove', url);
  checkUrl(url, where);
  const o = callOptions(options, where, ['signal']);
  return parseInfo(await run('Removing', url, o, () => native.remove(url, o.json)));
}

async function info(url, options) {
  const where = describe('info', url);
  checkUrl(url, where);
  const o = callOptions(options, where);
  const r = JSON.parse(await run('Reading', url, o, (p) => native.info(url, o.json, p)));
  const a = r.artifacts;
  const out = {url, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy};
  for (const key of ['modelTopology', 'trainingConfig', 'userDefinedMetadata', 'signature',
                     'modelInitializer', 'initializerSignature']) {
    if (a[key] != null) out[key] = a[key];
  }
  out.weightSpecs = a.weightSpecs || [];
  if (a.weightsManifest) out.weightsManifest = a.weightsManifest;
  out.modelArtifactsInfo = r.modelArtifactsInfo;
  out.weightBytes = r.weightBytes;
  if (a.weightsManifest && r.shardBytes) {
    out.weightFiles = [];
    a.weightsManifest.forEach((g, gi) => g.paths.forEach((p, pi) => {
      out.weightFiles.push({path: p, bytes: r.shardBytes[gi][pi]});
    }));
  }
  return out;
}

async function plugins() {
  return run('Listing plugins', '', {}, () => native.plugins());
}

async function configure(config) {
  const where = 'stowage.configure()';
  if (typeof config === 'string') {
    if (config === '') throw new TypeError(`${where}: the config file path is empty`);
    return run('Configuring', config, {}, () => native.configure(undefined, config));
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError(`${where}: give a config object or the path of a JSON config file`);
  }
  checkJson(config, where, '');
  const json = JSON.stringify(config);
  return run('Configuring', 'the object given to stowage.configure()', {},
             () => native.configure(json, undefined));
}

// Counters for tests and leak hunting: calls in flight, external
// ArrayBuffers still alive over stowage's buffers, and pinned save buffers.
function diagnostics() {
  return native.diagnostics();
}

module.exports = {
  io,
  copy,
  move,
  list,
  remove,
  info,
  plugins,
  configure,
  diagnostics,
  StowageError,
  StowageIOHandler,
  codes: Object.freeze(kCodes.slice(1)),
  addonPath,
  version: require('./package.json').version,
};
