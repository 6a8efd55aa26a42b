// Type declarations of the `stowage` npm package. The TF.js types below
// mirror @tensorflow/tfjs-core's io types (4.x) structurally, so a handler
// from io() is a tf.io.IOHandler without this package depending on TF.js.

/** A weight's entry in a weights manifest (tf.io.WeightsManifestEntry). */
export interface WeightsManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  group?: 'model' | 'optimizer';
  quantization?: {
    scale?: number;
    min?: number;
    dtype: 'uint16' | 'uint8' | 'float16';
  };
}

export interface WeightsManifestGroupConfig {
  paths: string[];
  weights: WeightsManifestEntry[];
}

/** tf.io.TrainingConfig. */
export interface TrainingConfig {
  optimizer_config: {};
  loss: string | string[] | {[key: string]: string};
  metrics?: string[] | {[key: string]: string};
  weighted_metrics?: string[];
  sample_weight_mode?: string;
  loss_weights?: number[] | {[key: string]: number};
}

/** tf.io.WeightData: the weight bytes, or their parts in order. */
export type WeightData = ArrayBuffer | ArrayBuffer[];

/** tf.io.ModelArtifacts. */
export interface ModelArtifacts {
  modelTopology?: {} | ArrayBuffer;
  trainingConfig?: TrainingConfig;
  weightSpecs?: WeightsManifestEntry[];
  /**
   * Saving: TF.js's weight bytes, used where they are without a copy.
   * Loading: one ArrayBuffer per weight file over stowage's own buffers
   * (treat them as read-only).
   */
  weightData?: WeightData;
  getWeightStream?: () => ReadableStream<ArrayBuffer>;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  signature?: {};
  userDefinedMetadata?: {[key: string]: {}};
  modelInitializer?: {};
  initializerSignature?: {};
}

/** tf.io.ModelArtifactsInfo, as a save reports it. */
export interface ModelArtifactsInfo {
  dateSaved: Date;
  modelTopologyType: 'JSON' | 'GraphDef';
  modelTopologyBytes?: number;
  weightSpecsBytes?: number;
  weightDataBytes?: number;
}

/** tf.io.SaveResult. `responses` only for http(s):// saves. */
export interface SaveResult {
  modelArtifactsInfo: ModelArtifactsInfo;
  responses?: Response[];
  errors?: Array<{} | string>;
}

/** What every call takes besides a plugin's options. */
export interface CallOptions {
  /** Aborting rejects the call with code 'CANCELLED' once its work has stopped. */
  signal?: AbortSignal;
}

/**
 * Options of io(): the handler options of the URL's plugin (a JSON object,
 * e.g. {shard_size: 4194304} for file:// and s3:// saves, {headers: {...}}
 * for http(s)://, {profile: '...'} for localstorage:// and indexeddb://;
 * unknown keys are refused), plus onProgress and signal.
 */
export interface IOOptions extends CallOptions {
  /** TF.js's form: the fraction done, growing, ending with 1 on success. */
  onProgress?: (fraction: number) => void;
  [pluginOption: string]: unknown;
}

/** A tf.io.IOHandler for one URL. */
export interface StowageIOHandler {
  readonly url: string;
  load(): Promise<ModelArtifacts>;
  save(artifacts: ModelArtifacts): Promise<SaveResult>;
}

export interface TransferOptions extends CallOptions {
  /** Handler options of the source's plugin. */
  sourceOptions?: {[pluginOption: string]: unknown};
  /** Handler options of the destination's plugin, e.g. {shard_size: 4194304}. */
  destinationOptions?: {[pluginOption: string]: unknown};
  /**
   * move(): where to read the copy back from before the source is removed,
   * when dst does not load it (an upload URL whose receiver names no model
   * URL). By default the URL the save's answer names, else dst.
   */
  verifyUrl?: string;
  onProgress?: (fraction: number) => void;
}

/** A store's options (e.g. {profile} of localstorage://), plus signal. */
export interface StoreOptions extends CallOptions {
  [pluginOption: string]: unknown;
}

/** What info() tells about a model, without handing over its weights. */
export interface ModelInfo {
  url: string;
  format?: string;
  generatedBy?: string | null;
  convertedBy?: string | null;
  modelTopology?: {};
  trainingConfig?: TrainingConfig;
  userDefinedMetadata?: {[key: string]: {}};
  signature?: {};
  modelInitializer?: {};
  initializerSignature?: {};
  weightSpecs: WeightsManifestEntry[];
  /** As in model.json, for stores that have one. */
  weightsManifest?: WeightsManifestGroupConfig[];
  /** What a save of this model reports (no dateSaved: nothing is saved). */
  modelArtifactsInfo: Omit<ModelArtifactsInfo, 'dateSaved'>;
  /** Total bytes of the weights. */
  weightBytes: number;
  /** Each weight file of the manifest with its size, when the store tells. */
  weightFiles?: Array<{path: string; bytes: number}>;
}

export interface PluginInfo {
  name: string;
  version: string;
  schemes: string[];
  /** "load", "save", "list", "remove", ... once the plugin is loaded. */
  capabilities: string[];
  /** "major.minor" of the plugin ABI. */
  abi: string;
  manifest: string | null;
  library: string;
  /** "api", "config", "STOWAGE_PLUGIN_PATH" or "default". */
  source: string;
  loaded: boolean;
  allowed: boolean;
}

/** The host config of docs/config.md, as an object. */
export interface Config {
  plugin_paths?: string[];
  plugins?: Array<string | {path: string; sha256?: string}>;
  allow?: string[];
  aliases?: {[scheme: string]: string};
  scheme_plugins?: {[scheme: string]: string};
  defaults?: {[scheme: string]: {[pluginOption: string]: unknown}};
  sha256?: {[plugin: string]: string};
  retry?: {
    max_attempts?: number;
    initial_backoff_ms?: number;
    max_backoff_ms?: number;
    total_deadline_ms?: number;
  };
}

export type ErrorCode =
    | 'NOT_FOUND'
    | 'INVALID_ARGUMENT'
    | 'ALREADY_EXISTS'
    | 'PERMISSION_DENIED'
    | 'UNAVAILABLE'
    | 'DATA_LOSS'
    | 'RESOURCE_EXHAUSTED'
    | 'CANCELLED'
    | 'DEADLINE_EXCEEDED'
    | 'UNIMPLEMENTED'
    | 'INTERNAL';

/** Every failure of a call: the host's code, retry hint and message. */
export class StowageError extends Error {
  constructor(code: ErrorCode, message: string,
              options?: {retryable?: boolean; url?: string; cause?: unknown});
  readonly name: 'StowageError';
  readonly code: ErrorCode;
  /** True when the same call may succeed if tried again. */
  readonly retryable: boolean;
  /** The URL of the call, when there is one. */
  readonly url?: string;
}

/** A TF.js IOHandler for `url`: tf.loadLayersModel(io(u)), model.save(io(u)). */
export function io(url: string, options?: IOOptions): StowageIOHandler;

/** tf.io.copyModel for every scheme; resolves the destination's info. */
export function copy(src: string, dst: string, options?: TransferOptions): Promise<ModelArtifactsInfo>;

/** Copies, reads the copy back and compares it, and only then removes src. */
export function move(src: string, dst: string, options?: TransferOptions): Promise<ModelArtifactsInfo>;

/** tf.io.listModels for one store: {[url]: info} of the models at or under url. */
export function list(url: string, options?: StoreOptions): Promise<{[url: string]: ModelArtifactsInfo}>;
/**
 * tf.io.listModels(): the models of the default locations, the config's
 * "list_locations", else localstorage://, indexeddb:// and memory://.
 */
export function list(url?: undefined, options?: CallOptions): Promise<{[url: string]: ModelArtifactsInfo}>;

/** tf.io.removeModel: resolves the removed model's info. */
export function remove(url: string, options?: StoreOptions): Promise<ModelArtifactsInfo>;

/** What a model is made of: metadata, sizes, weight specs and files. */
export function info(url: string, options?: IOOptions): Promise<ModelInfo>;

/** The plugins found, loaded or not. */
export function plugins(): Promise<PluginInfo[]>;

/** Applies a host config (an object, or the path of a JSON file) on top of the one in force. */
export function configure(config: Config | string): Promise<void>;

/** Counters for tests and leak hunting. */
export function diagnostics(): {
  /** Calls whose promise has not settled. */
  activeCalls: number;
  /** Loaded ArrayBuffers over stowage's buffers that the GC has not freed. */
  externalBuffers: number;
  externalBytes: number;
  /** ArrayBuffers given to saves that stowage still uses (memory:// keeps them). */
  pinnedBuffers: number;
};

export const codes: readonly ErrorCode[];
/** The native addon file in use. */
export const addonPath: string;
export const version: string;
