#!/usr/bin/env python3
"""Golden outputs for stowage's weight quantization, made with NumPy by the
TensorFlow.js converter's own algorithm.

What this re-states (read, not copied): tensorflow/tfjs at commit
0fc04d958ea592f3b8db79a8b3b497b5c8904097 (the tensorflowjs 4.22 line),
  tfjs-converter/python/tensorflowjs/quantization.py
    quantize_weights, _get_affine_quantization_range,
    map_layers_to_quantization_dtype
  tfjs-converter/python/tensorflowjs/write_weights.py
    write_weights, _quantize_entry, _get_weights_manifest_for_group
  tfjs-converter/python/tensorflowjs/converters/converter.py
    _parse_quantization_dtype_map (--quantize_uint8 [NAMES] and friends)
The tensorflowjs package itself cannot be installed here, so the algorithm
is written out below step by step, calling the same NumPy operations on the
same NumPy types, so that NumPy does the arithmetic (and picks float32 or
float64 for it) exactly as it does inside the converter.

NumPy 1 and NumPy 2 give different bytes. The converter computes
round((clip(x, min, max) - min) / scale) with min, max and scale held as
numpy.float64 scalars and x as a float32 array. NumPy 1's value-based
casting keeps that arithmetic in float32 (unless a scalar is too large for
float32); NumPy 2 (NEP 50) promotes it to float64. Both are recorded:
"numpy2" is computed under the NEP 50 rules and "numpy1" under the legacy
rules (NumPy 1.24 to 2.1 can switch between them with
numpy._set_promotion_state).

  python3 tests/quantize_reference.py --out tests/data/quantize   (re)write
  python3 tests/quantize_reference.py --check tests/data/quantize  compare

Needs NumPy (Debian: python3-numpy). The files it writes are committed; the
test quantize_reference_check regenerates them and fails on any difference.
"""

import argparse
import contextlib
import fnmatch
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import warnings

import numpy as np

SOURCE = ('tensorflow/tfjs@0fc04d958ea592f3b8db79a8b3b497b5c8904097: '
          'tfjs-converter/python/tensorflowjs/quantization.py and write_weights.py')
STORAGE = {'uint8': np.uint8, 'uint16': np.uint16, 'float16': np.float16}


@contextlib.contextmanager
def promotion(rules):
  """Runs the block under NumPy 2's (NEP 50, "weak") or NumPy 1's ("legacy")
  type promotion."""
  native = 'weak' if int(np.__version__.split('.')[0]) >= 2 else 'legacy'
  if rules == native and not hasattr(np, '_set_promotion_state'):
    yield
    return
  if not hasattr(np, '_set_promotion_state'):
    sys.exit('NumPy %s cannot emulate %s promotion; use NumPy 1.24 to 2.1 '
             '(Debian 12: python3-numpy)' % (np.__version__, rules))
  before = np._get_promotion_state()
  np._set_promotion_state(rules)
  try:
    yield
  finally:
    np._set_promotion_state(before)


class ConverterFails(Exception):
  """What the converter does instead of writing a usable model."""


def quantize(values, storage):
  """quantize_weights: returns (stored array, metadata dict).

  The converter's steps, in order, on the same NumPy types."""
  if storage == 'float16':
    # A plain float32 -> float16 cast: round to nearest even, overflow to inf.
    return values.astype(np.float16), {}
  dtype = STORAGE[storage]
  if values.size == 0:
    # ndarray.min() of an empty array raises: the converter stops here.
    raise ConverterFails('raises ValueError (zero-size array to reduction '
                         'operation minimum which has no identity)')
  low = values.min().astype(np.float64)
  high = values.max().astype(np.float64)
  if low == high:
    return np.zeros_like(values, dtype=dtype), {'min': low, 'scale': 1.0}
  top = np.iinfo(dtype).max  # a Python int
  scale = (high - low) / top
  if low <= 0 <= high:
    # Move the range so that 0.0 falls exactly on an integer step.
    zero_point = np.round((0 - low) / scale)
    low = -zero_point * scale
    high = top * scale + low
  steps = np.round((values.clip(low, high) - low) / scale)
  if steps.max() > top:
    # Only NumPy 1's float32 arithmetic gets here (a float32 subnormal scale
    # loses precision); the cast to the storage type then wraps the step
    # around, so the largest values would load as the smallest.
    raise ConverterFails('stores step %d, outside 0..%d, which the cast wraps '
                         'around' % (steps.max(), top))
  stored = steps.astype(dtype)
  return stored, {'min': low, 'scale': scale}


def checked_quantize(values, storage):
  """quantize() where the result would not be a usable model raises
  ConverterFails: non-finite metadata (json.dump writes NaN or Infinity,
  which JSON.parse in TF.js rejects) or a NaN/overflow inside the arithmetic
  (the cast to uint8/uint16 of a NaN or infinity is undefined in C)."""
  if storage == 'float16':
    # Overflow to infinity is the cast's result (NumPy only warns).
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      return quantize(values, storage)
  if values.size and not np.all(np.isfinite(values)):
    raise ConverterFails('writes NaN or Infinity into min/scale or casts NaN '
                         'to an integer (the model does not load in TF.js)')
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    with np.errstate(over='raise', invalid='raise', divide='raise'):
      try:
        stored, meta = quantize(values, storage)
      except FloatingPointError as e:
        raise ConverterFails('float arithmetic fails (%s): the stored values '
                             'are undefined' % e)
  return stored, meta


# ------------------------------------------------------------------- helpers

def f32(values):
  return np.array(values, dtype=np.float32)


def f32_bits(bits):
  return np.array(bits, dtype=np.uint32).view(np.float32)


def hex_bytes(array):
  return array.astype(array.dtype.newbyteorder('<')).tobytes().hex()


def double_hex(value):
  return struct.pack('>d', float(value)).hex()


# -------------------------------------------------------------- tensor cases

def tensor_cases():
  """(name, float32 array): the edge cases and some random tensors."""
  rand = np.random.RandomState(20240615)  # the legacy generator: stable output
  big = np.finfo(np.float32).max
  tiny = np.finfo(np.float32).tiny  # smallest normal
  cases = [
      ('empty', f32([])),
      ('scalar', f32([0.625]).reshape(())),
      ('all_equal_one', f32([1.0] * 5)),
      ('all_equal_negative', f32([-2.5] * 3)),
      ('all_equal_zero', f32([0.0] * 4)),
      ('all_equal_huge', f32([3.0e38] * 2)),
      ('zero_and_positive', f32([0.0, 0.5, 1.0, 2.0, 3.0])),
      ('negative_and_zero', f32([-3.0, -2.0, -1.0, -0.5, 0.0])),
      ('all_positive', f32([1.0, 1.25, 2.0, 3.0, 2.5])),
      ('all_negative', f32([-3.0, -1.0, -2.25, -1.5])),
      ('straddles_zero', f32([-0.29098126, -0.24776903, -0.27248842, 0.23848203])),
      ('converter_docstring', f32([0.0, -0.1, 1.2])),
      # scale == 1: stored = round(x) exactly, so halves show the rounding
      # mode (half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 254.5 -> 254).
      ('ties_uint8', f32([0.0, 255.0, 0.5, 1.5, 2.5, 3.5, 127.5, 128.5, 253.5, 254.5])),
      ('ties_uint16', f32([0.0, 65535.0, 0.5, 1.5, 2.5, 1000.5, 1001.5, 65533.5, 65534.5])),
      # The zero point lands on a half: 0.25 / 0.5 = 0.5 -> 0, 0.75 / 0.5 = 1.5 -> 2.
      ('zero_point_tie_even', f32([-0.25, 127.25, 0.0, 0.25, 0.75, 100.0])),
      ('zero_point_tie_odd', f32([-0.75, 126.75, 0.0, -0.25, 0.25, 50.0])),
      # Nudging moves the range: the extremes are clipped by up to scale/2.
      ('nudge_clips_min', f32([-1.0, 0.0, 0.3, 1.0, 2.0])),
      ('nudge_clips_max', f32([-2.0, -1.0, 0.0, 0.7, 1.0])),
      ('signed_zeros', f32([-0.0, 0.0, 1.0, -1.0])),
      ('huge_range_positive', f32([1.0e38, 2.0e38, 3.0e38, 1.5e38])),
      ('huge_range_straddle', f32([-3.0e38, 3.0e38, 0.0, 1.0e38, -1.0e38])),
      ('full_float32_range', f32([-big, big, 0.0, 1.0, -1.0e30])),
      ('min_near_float32_max', f32([-big, 1.0, 0.0, -1.0e38])),
      ('subnormal_range', f32_bits([1, 2, 3, 5, 8])),
      ('tiny_normal_range', f32([tiny, 2 * tiny, 3 * tiny, 10 * tiny])),
      ('with_nan', f32([1.0, float('nan'), -1.0])),
      ('with_inf', f32([1.0, float('inf'), -1.0])),
      ('all_inf', f32([float('-inf')] * 3)),
      ('all_nan', f32([float('nan')] * 2)),
      # float16: rounding, subnormals, overflow, signed zero, NaN and inf.
      ('float16_edges', np.concatenate([
          f32([65504.0, 65519.99609375, 65520.0, -65520.0, 1.0e30, -1.0e30,
               float('inf'), float('-inf'), float('nan'), -0.0, 1.0e-8, -1.0e-8,
               2.0**-24, 2.0**-25, -2.0**-25, 3 * 2.0**-25, 5 * 2.0**-25,
               2.0**-25 * 1.0000001, 6.097555160522461e-05, 6.103515625e-05,
               6.1e-05, 6.1028e-05, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
               1.0 + 2.0**-11 + 2.0**-20, 2049.0, 2051.0, 0.1, -0.1, 1.0 / 3,
               3.14159265, -2.71828183, 1.0e-45]),
          f32_bits([0x7fc00001, 0xffc00000, 0x7fd00000, 0x00000001, 0x80000001]),
      ])),
      ('rand_uint8_normal', rand.normal(0.0, 0.05, 1000).astype(np.float32)),
      ('rand_uint16_normal', rand.normal(0.01, 0.2, 3000).astype(np.float32)),
      ('rand_positive', rand.uniform(0.5, 1.5, 500).astype(np.float32)),
      ('rand_wide', (rand.standard_cauchy(800) * 1000).astype(np.float32)),
  ]
  return cases


def case_result(values, storage, rules):
  with promotion(rules):
    try:
      stored, meta = checked_quantize(values, storage)
    except ConverterFails as e:
      return {'converter': str(e)}
  out = {'bytes': hex_bytes(stored)}
  if storage != 'float16':
    out['min'] = float(meta['min'])
    out['scale'] = float(meta['scale'])
    out['min_bits'] = double_hex(meta['min'])
    out['scale_bits'] = double_hex(meta['scale'])
  return out


def tensors_golden():
  cases = []
  for name, values in tensor_cases():
    entry = {'name': name, 'shape': list(values.shape),
             'values': hex_bytes(values), 'results': {}}
    for rules, label in (('weak', 'numpy2'), ('legacy', 'numpy1')):
      entry['results'][label] = {s: case_result(values, s, rules) for s in STORAGE}
    cases.append(entry)
  return {
      'source': SOURCE,
      'generator': 'tests/quantize_reference.py with NumPy %s' % np.__version__,
      'note': ('values and bytes are little-endian hex; min and scale are the '
               'float64 values the converter writes, with their IEEE bits '
               'big-endian in min_bits/scale_bits. "converter" says what the '
               'converter does instead of writing a usable model.'),
      'cases': cases,
  }


# -------------------------------------------------------------- model cases

def model_weights():
  """A small model with every dtype TF.js stores; names are chosen so that
  the wildcard patterns below select some of them."""
  rand = np.random.RandomState(7)
  return [
      ('dense_1/kernel', rand.normal(0, 0.3, (8, 6)).astype(np.float32)),
      ('dense_1/bias', rand.uniform(0.0, 0.2, (6,)).astype(np.float32)),
      ('conv1/kernel', rand.normal(0, 0.5, (3, 3, 2, 4)).astype(np.float32)),
      ('conv1/bias', f32([0.0, -0.25, 0.125, 0.5])),
      ('conv2/bias', f32([0.0, 0.0, 0.0])),
      ('embedding[0]/table', rand.uniform(-4.0, -1.0, (5, 3)).astype(np.float32)),
      ('step', np.array([42, -7], dtype=np.int32)),
      ('mask', np.array([1, 0, 1], dtype=np.uint8)),  # bool
      ('vocab', np.array([b'a', b'\xe6\xad\xa3', b''], dtype=object)),  # string
  ]


def tensor_bytes(name, array):
  if array.dtype == object:
    return b''.join(struct.pack('<I', len(s)) + s for s in array)
  return array.astype(array.dtype.newbyteorder('<')).tobytes()


def dtype_name(array):
  return {'float32': 'float32', 'int32': 'int32', 'uint8': 'bool',
          'object': 'string'}[array.dtype.name]


def quantization_map(names, flags):
  """map_layers_to_quantization_dtype after _parse_quantization_dtype_map:
  flags maps a storage dtype to True (the flag given with no names) or to
  the flag's comma-separated value."""
  catch_all = None
  chosen = {}
  for storage, value in flags.items():
    if value is True:
      if catch_all is not None:
        raise ValueError('More than one quantization fallthrough provided')
      catch_all = storage
      continue
    for pattern in value.split(','):
      for name in fnmatch.filter(names, pattern):
        if chosen.get(name, storage) != storage:
          raise ValueError('Two quantization values match the same node ' + name)
        chosen[name] = storage
  if catch_all is not None:
    for name in names:
      chosen.setdefault(name, catch_all)
  return chosen


MODEL_SCENARIOS = [
    # (folder, flags as the converter takes them, promotion rules)
    ('uint8_all', {'uint8': True}, 'weak'),
    ('uint16_all', {'uint16': True}, 'weak'),
    ('float16_all', {'float16': True}, 'weak'),
    ('uint8_patterns', {'uint8': 'dense*/kernel,conv?/bias,embedding[[]0]/*,nothing/*'},
     'weak'),
    ('uint8_all_numpy1', {'uint8': True}, 'legacy'),
    ('uint16_all_numpy1', {'uint16': True}, 'legacy'),
]


def python_json(obj):
  """json.dump with default arguments, as the converter writes model.json."""
  return json.dumps(obj)


def write_models(out):
  weights = model_weights()
  topology = {'class_name': 'Sequential', 'config': {'name': 'quantize_golden', 'layers': []},
              'keras_version': 'tfjs-layers 4.22.0', 'backend': 'tensor_flow.js'}
  # The float32 source, as tfjs-node writes it (JSON.stringify, weights.bin).
  src = os.path.join(out, 'float_model')
  os.makedirs(src)
  specs = [{'name': n, 'shape': list(a.shape), 'dtype': dtype_name(a)} for n, a in weights]
  with open(os.path.join(src, 'weights.bin'), 'wb') as f:
    f.write(b''.join(tensor_bytes(n, a) for n, a in weights))
  model = {'modelTopology': topology, 'format': 'layers-model',
           'generatedBy': 'TensorFlow.js tfjs-layers v4.22.0',
           'convertedBy': None,
           'weightsManifest': [{'paths': ['weights.bin'], 'weights': specs}]}
  with open(os.path.join(src, 'model.json'), 'w') as f:
    f.write(json.dumps(model, separators=(',', ':'), ensure_ascii=False))

  names = [n for n, _ in weights]
  for folder, flags, rules in MODEL_SCENARIOS:
    chosen = quantization_map(names, flags)
    entries, chunks = [], []
    with promotion(rules):
      for name, array in weights:
        entry = {'name': name, 'shape': list(array.shape), 'dtype': dtype_name(array)}
        data = tensor_bytes(name, array)
        # _quantize_entry: only float32 data is quantized.
        if name in chosen and array.dtype == np.float32:
          stored, meta = checked_quantize(array, chosen[name])
          quantization = {'dtype': chosen[name]}
          quantization.update(meta)
          quantization['original_dtype'] = 'float32'
          entry['quantization'] = quantization
          data = tensor_bytes(name, stored)
        entries.append(entry)
        chunks.append(data)
    dst = os.path.join(out, folder)
    os.makedirs(dst)
    data = b''.join(chunks)
    with open(os.path.join(dst, 'group1-shard1of1.bin'), 'wb') as f:
      f.write(data)
    converted = {'format': 'layers-model', 'generatedBy': 'TensorFlow.js tfjs-layers v4.22.0',
                 'convertedBy': 'TensorFlow.js Converter v4.22.0',
                 'modelTopology': topology,
                 'weightsManifest': [{'paths': ['group1-shard1of1.bin'], 'weights': entries}]}
    with open(os.path.join(dst, 'model.json'), 'w') as f:
      f.write(python_json(converted))
    with open(os.path.join(dst, 'flags.json'), 'w') as f:
      f.write(json.dumps({'flags': flags, 'numpy': 'numpy2' if rules == 'weak' else 'numpy1'},
                         sort_keys=True) + '\n')


# ----------------------------------------------------------- name patterns

PATTERNS = [
    '*', '**', '?', '???', 'dense*', 'dense*/kernel', '*/bias', 'conv?/bias', 'DENSE*',
    'dense_1/kernel', 'dense_1', '[ab]*', '[a-c]*', '[!a-c]*', '[]]*', '[!]]*', '[]-a]*',
    '[z-a]*', '[!z-a]*', '[a-]*', '[-a]*', '[!-a]*', '[a--b]*', '[a-c-e]*', '[%--]*',
    '[', 'a[', '[!', '[]', '[!]', 'x[!]]', '[^a]*', '[\\]*', '[&&]*', '[a&&b]*',
    'embedding[[]0]/*', 'embedding[0]/*', '*[[]*', '\\*', '*\n*', '*.*', '[.]*',
    '\u6b63*', '?\u5e38', '[\u03b1-\u03c9]*', '*[!/]', '*/*/*', 'a*b*c', 'a*b*c*',
    '*kernel*', '[!d]*/[!k]*',
]
NAMES = [
    'dense_1/kernel', 'dense_1/bias', 'dense/kernel/extra', 'conv1/bias', 'conv12/bias',
    'DENSE_1/kernel', 'a', 'b', 'c', 'd', 'e', '-', ']', '^', '[', '\\', '&', '%', ',',
    'embedding[0]/table', 'embedding0/table', 'line\nbreak', 'x]', 'x', '',
    'a.b', '.hidden', '\u6b63\u5e38', '\u6b63', '\u03b2eta', 'abc', 'aXbYc', 'acb',
    'head/x/y', 'head/', '*', '?',
]


def patterns_golden():
  import platform
  rows = []
  for pattern in PATTERNS:
    rows.append({'pattern': pattern,
                 'matches': [n for n in NAMES if fnmatch.fnmatchcase(n, pattern)]})
  return {'source': 'Python %s fnmatch.fnmatchcase (what fnmatch.filter does on POSIX)'
                    % platform.python_version(),
          'names': NAMES, 'patterns': rows}


def generate(out):
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'tensors.json'), 'w') as f:
    json.dump(tensors_golden(), f, indent=1, sort_keys=False)
    f.write('\n')
  with open(os.path.join(out, 'patterns.json'), 'w') as f:
    json.dump(patterns_golden(), f, indent=1, ensure_ascii=False)
    f.write('\n')
  write_models(out)


def same_tree(a, b):
  differences = []
  for root, _, files in os.walk(a):
    for name in files:
      pa = os.path.join(root, name)
      rel = os.path.relpath(pa, a)
      pb = os.path.join(b, rel)
      if rel.endswith('.py') or rel == 'README.md':
        continue
      if not os.path.exists(pb):
        differences.append('%s is not committed' % rel)
      elif open(pa, 'rb').read() != open(pb, 'rb').read():
        differences.append('%s differs' % rel)
  return differences


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument('--out', help='write the golden files into this folder')
  group.add_argument('--check', help='regenerate and compare with this folder')
  args = parser.parse_args()
  if args.out:
    for name in ('tensors.json',) + tuple(s[0] for s in MODEL_SCENARIOS) + ('float_model',):
      path = os.path.join(args.out, name)
      if os.path.isdir(path):
        shutil.rmtree(path)
    generate(args.out)
    return 0
  work = tempfile.mkdtemp(prefix='stowage-quantize-reference-')
  try:
    generate(work)
    differences = same_tree(work, args.check)
  finally:
    shutil.rmtree(work)
  for d in differences:
    print('FAIL %s (regenerate with --out and review the change)' % d)
  print('%d passed, %d failed' % (0 if differences else 1, 1 if differences else 0))
  return 1 if differences else 0


if __name__ == '__main__':
  sys.exit(main())
