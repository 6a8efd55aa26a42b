// Compiled (never run) with the real TF.js 4.22 declarations by
// typecheck.js: what a TypeScript user writes must type-check, and misuse
// must not (the @ts-expect-error lines fail the check if they compile).
import * as tf from '@tensorflow/tfjs';
import * as stowage from 'stowage';

async function main(): Promise<void> {
  const controller = new AbortController();
  const handler = stowage.io('s3://bucket/m/model.json', {
    endpoint: 'http://127.0.0.1:9000',
    onProgress: (fraction: number) => console.log(fraction),
    signal: controller.signal,
  });
  const asTfHandler: tf.io.IOHandler = handler;
  const layers: tf.LayersModel = await tf.loadLayersModel(handler);
  const graph: tf.GraphModel = await tf.loadGraphModel(stowage.io('file:///m/model.json'));
  const saved: tf.io.SaveResult = await layers.save(stowage.io('file:///tmp/m'));
  const graphSaved: tf.io.SaveResult = await graph.save(stowage.io('memory://g'));
  const info: tf.io.ModelArtifactsInfo = saved.modelArtifactsInfo;
  const artifacts: tf.io.ModelArtifacts = await handler.load();
  const again: stowage.SaveResult = await handler.save(artifacts);
  const fromTfjs: stowage.ModelArtifacts = await tf.io.http('http://h/m/model.json').load!();
  await stowage.io('file:///x').save(fromTfjs);

  const copied: tf.io.ModelArtifactsInfo =
      await stowage.copy('file:///a', 's3://b/a', {destinationOptions: {shard_size: 1 << 22}});
  await stowage.move('memory://a', 'file:///b', {onProgress: (f) => f, signal: controller.signal});
  const listed: {[url: string]: tf.io.ModelArtifactsInfo} = await stowage.list('memory://');
  const everywhere: {[url: string]: tf.io.ModelArtifactsInfo} = await stowage.list();
  await stowage.move('http://h/upload', 'file:///b', {verifyUrl: 'http://cdn/m/model.json'});
  const removed: tf.io.ModelArtifactsInfo = await stowage.remove('memory://a');
  const m: stowage.ModelInfo = await stowage.info('file:///a/model.json');
  const files: number = (m.weightFiles ?? []).reduce((n, f) => n + f.bytes, m.weightBytes);
  const plugins: stowage.PluginInfo[] = await stowage.plugins();
  await stowage.configure({aliases: {models: 's3://bucket/prefix'}, defaults: {s3: {region: 'eu-west-1'}}});
  await stowage.configure('/etc/stowage.json');
  try {
    await handler.load();
  } catch (e) {
    if (e instanceof stowage.StowageError && e.code === 'NOT_FOUND' && !e.retryable) {
      console.log(e.url, e.message);
    }
  }
  const d: number = stowage.diagnostics().activeCalls;

  // @ts-expect-error a URL is a string
  stowage.io(42);
  // @ts-expect-error onProgress takes a fraction
  stowage.io('file:///m', {onProgress: (f: string) => f});
  // @ts-expect-error no such error code
  const code: stowage.ErrorCode = 'NOTFOUND';
  // @ts-expect-error unknown config key
  await stowage.configure({alias: {}});
  // @ts-expect-error without a URL, no plugin options
  await stowage.list(undefined, {profile: '/p'});
  // @ts-expect-error copy resolves info, not a SaveResult
  const wrong: tf.io.SaveResult = await stowage.copy('a://', 'b://');
  console.log(asTfHandler, layers, graph, graphSaved, info, again, copied, listed, everywhere, removed,
              files, plugins, d, code, wrong);
}

main();
