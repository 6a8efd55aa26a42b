// The converter's quantization, restated (tensorflow/tfjs at
// 0fc04d958ea592f3b8db79a8b3b497b5c8904097,
// tfjs-converter/python/tensorflowjs/quantization.py and write_weights.py).
// tests/quantize_reference.py runs the same steps in NumPy and wrote the
// golden outputs in tests/data/quantize that quantize_test.cpp compares with.
//
// Built with -ffp-contract=off (CMakeLists.txt): NumPy rounds after every
// multiply and add, so a fused multiply-add would change `min` in the last bit.
#include "stowage/quantize.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "stowage/error.hpp"
#include "stowage/weights.hpp"

namespace stowage {
namespace {

std::string number(double v) {
  char text[40];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

std::string who(std::string_view name) {
  return name.empty() ? std::string("a weight") : "weight '" + std::string(name) + "'";
}

// ---- uint8 / uint16 -----------------------------------------------------------

// NumPy 1's value-based casting: a float64 scalar combined with a float32
// array is demoted to float32 unless it lies outside (-3.4e38, 3.4e38)
// (min_scalar_type; infinities and NaN count as small).
bool needs_float64(double scalar) {
  return std::isfinite(scalar) && !(scalar > -3.4e38 && scalar < 3.4e38);
}

template <typename Store>
void put(std::vector<uint8_t>& out, size_t i, Store value) {
  for (size_t b = 0; b < sizeof(Store); ++b) {
    out[i * sizeof(Store) + b] = static_cast<uint8_t>(value >> (8 * b));
  }
}

template <typename Store>
QuantizedTensor quantize_affine(std::span<const float> values, QuantizeDType dtype,
                                ConverterNumpy numpy, std::string_view name) {
  const std::string storage(quantize_dtype_name(dtype));
  if (values.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                who(name) + " has no values; " + storage +
                    " quantization needs a minimum and a maximum (the Python converter raises "
                    "on such a tensor)");
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  who(name) + " holds " + number(values[i]) + " at index " + std::to_string(i) +
                      "; " + storage +
                      " quantization of it would write NaN or Infinity into min/scale, which "
                      "TF.js cannot load (the Python converter writes such a model anyway). "
                      "Quantize it to float16 or leave it out of the selection.");
    }
  }
  // ndarray.min()/max() of float32, then widened: exact.
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  double lo = *lo_it;
  double hi = *hi_it;

  QuantizedTensor out;
  out.bytes.assign(values.size() * sizeof(Store), 0);
  out.quantization.dtype = storage;
  out.quantization.original_dtype = "float32";
  if (lo == hi) {
    // One value: everything stores as 0 with scale 1.
    out.quantization.min = lo;
    out.quantization.scale = 1.0;
    return out;
  }

  constexpr unsigned kTop = std::numeric_limits<Store>::max();
  const double scale = (hi - lo) / kTop;
  if (lo <= 0 && 0 <= hi) {
    // Nudge the range so that 0.0 is exactly one of the stored steps
    // (TF-Lite's NudgeQuantizationRange); numpy.round is half to even, as
    // nearbyint in the default rounding mode.
    const double zero_point = std::nearbyint((0.0 - lo) / scale);
    lo = -zero_point * scale;
    hi = kTop * scale + lo;
  }
  out.quantization.min = lo;
  out.quantization.scale = scale;

  // Which float width NumPy computes clip, subtract and divide in.
  const bool wide = numpy == ConverterNumpy::kNumpy2 || needs_float64(lo) || needs_float64(hi);
  const bool wide_divide = wide || needs_float64(scale);
  const float lo32 = static_cast<float>(lo);
  const float hi32 = static_cast<float>(hi);
  const float scale32 = static_cast<float>(scale);
  for (size_t i = 0; i < values.size(); ++i) {
    double steps;
    if (wide) {
      const double clipped = std::min(std::max(static_cast<double>(values[i]), lo), hi);
      steps = std::nearbyint((clipped - lo) / scale);
    } else {
      const float shifted = std::min(std::max(values[i], lo32), hi32) - lo32;
      steps = wide_divide ? std::nearbyint(shifted / scale)
                          : static_cast<double>(std::nearbyint(shifted / scale32));
    }
    if (!std::isfinite(steps)) {
      throw Error(ErrorCode::kInvalidArgument,
                  who(name) + ": with NumPy 1 the Python converter computes in float32, which " +
                      "overflows or divides by zero for the range [" + number(*lo_it) + ", " +
                      number(*hi_it) + "] (scale " + number(scale) +
                      "), so its stored values are undefined. Use the NumPy 2 rules.");
    }
    if (steps < 0 || steps > kTop) {
      // Only float32 arithmetic gets here (a subnormal float32 scale loses
      // precision); the converter's cast would wrap the step around.
      throw Error(wide ? ErrorCode::kInternal : ErrorCode::kInvalidArgument,
                  who(name) + ": with NumPy 1 the Python converter computes in float32 and " +
                      "gets step " + number(steps) + ", outside 0.." + std::to_string(kTop) +
                      ", which its cast wraps around (the largest values would load as the " +
                      "smallest). Use the NumPy 2 rules.");
    }
    put<Store>(out.bytes, i, static_cast<Store>(steps));
  }
  return out;
}

// ---- Weight-name patterns (Python's fnmatch) ------------------------------------

std::u32string code_points(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    char32_t cp = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
    bool valid = n != 0 && i + n <= text.size();
    for (size_t k = 1; valid && k < n; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xc0) != 0x80) valid = false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (!valid) {
      out.push_back(0xdc00 + b);  // Python's surrogateescape: the byte stands for itself
      ++i;
      continue;
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

// One element of a translated pattern: `*`, `?`, a literal or a set.
struct Token {
  enum Kind { kStar, kAny, kLiteral, kSet, kNever };
  explicit Token(Kind k, char32_t c = 0) : kind(k), literal(c) {}

  Kind kind;
  char32_t literal;
  bool negated = false;
  std::u32string members;                             // literal members of a set
  std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive ranges of a set

  bool accepts(char32_t c) const {
    switch (kind) {
      case kAny:
        return true;
      case kLiteral:
        return c == literal;
      case kNever:
        return false;
      case kSet: {
        bool in = members.find(c) != std::u32string::npos;
        for (const auto& [a, b] : ranges) in = in || (a <= c && c <= b);
        return in != negated;
      }
      case kStar:
        break;
    }
    return false;
  }
};

// fnmatch.translate (Python 3.11-3.13), producing tokens instead of a regular
// expression. A bracket expression `[...]` is cut at its range hyphens into
// chunks; adjacent chunks form a range from the last character of one to the
// first of the next; reversed ranges are dropped with their end points; a
// leading `!` negates; a `[` with no closing `]` is a literal.
std::vector<Token> translate(const std::u32string& p) {
  std::vector<Token> tokens;
  const size_t n = p.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = p[i++];
    if (c == U'*') {
      if (tokens.empty() || tokens.back().kind != Token::kStar) tokens.emplace_back(Token::kStar);
      continue;
    }
    if (c == U'?') {
      tokens.emplace_back(Token::kAny);
      continue;
    }
    if (c != U'[') {
      tokens.emplace_back(Token::kLiteral, c);
      continue;
    }
    size_t j = i;
    if (j < n && p[j] == U'!') ++j;
    if (j < n && p[j] == U']') ++j;
    while (j < n && p[j] != U']') ++j;
    if (j >= n) {
      tokens.emplace_back(Token::kLiteral, U'[');
      continue;
    }
    std::vector<std::u32string> chunks;
    const std::u32string stuff = p.substr(i, j - i);
    if (stuff.find(U'-') == std::u32string::npos) {
      chunks.push_back(stuff);
    } else {
      // A hyphen right after the opening (or after `!`) or right after a
      // range's end is a literal: the search skips those positions.
      size_t k = p[i] == U'!' ? i + 2 : i + 1;
      while (true) {
        size_t dash = k;
        while (dash < j && p[dash] != U'-') ++dash;
        if (dash >= j) break;
        chunks.push_back(p.substr(i, dash - i));
        i = dash + 1;
        k = dash + 3;
      }
      std::u32string last = p.substr(i, j - i);
      if (!last.empty()) {
        chunks.push_back(last);
      } else {
        chunks.back() += U'-';
      }
      for (size_t m = chunks.size() - 1; m > 0; --m) {
        if (chunks[m - 1].empty() || chunks[m].empty()) continue;
        if (chunks[m - 1].back() > chunks[m].front()) {
          chunks[m - 1] = chunks[m - 1].substr(0, chunks[m - 1].size() - 1) + chunks[m].substr(1);
          chunks.erase(chunks.begin() + static_cast<ptrdiff_t>(m));
        }
      }
    }
    i = j + 1;
    if (chunks.size() == 1 && chunks[0].empty()) {
      tokens.emplace_back(Token::kNever);
      continue;
    }
    if (chunks.size() == 1 && chunks[0] == U"!") {
      tokens.emplace_back(Token::kAny);
      continue;
    }
    Token set(Token::kSet);
    if (!chunks[0].empty() && chunks[0].front() == U'!') {
      set.negated = true;
      chunks[0].erase(0, 1);
    }
    for (size_t m = 0; m < chunks.size(); ++m) {
      set.members += chunks[m];
      if (m == 0) continue;
      if (chunks[m - 1].empty()) {
        set.members += U'-';  // nothing to the left: the hyphen is a literal
      } else {
        set.ranges.emplace_back(chunks[m - 1].back(), chunks[m].front());
      }
    }
    tokens.push_back(std::move(set));
  }
  return tokens;
}

// Whole-string match; `*` matches any run (newlines included, as re.DOTALL).
bool match(const std::vector<Token>& tokens, const std::u32string& s) {
  size_t t = 0, i = 0;
  size_t star = std::string::npos, resume = 0;
  while (i < s.size()) {
    if (t < tokens.size() && tokens[t].kind == Token::kStar) {
      star = t++;
      resume = i;
    } else if (t < tokens.size() && tokens[t].accepts(s[i])) {
      ++t;
      ++i;
    } else if (star != std::string::npos) {
      t = star + 1;
      i = ++resume;
    } else {
      return false;
    }
  }
  while (t < tokens.size() && tokens[t].kind == Token::kStar) ++t;
  return t == tokens.size();
}

// ---- Artifacts ------------------------------------------------------------------------

// Appends the bytes [begin, end) of the concatenation as slices of its
// buffers (no copy).
void append_range(const WeightData& data, uint64_t begin, uint64_t end, WeightData& out) {
  uint64_t base = 0;
  for (const Buffer& b : data) {
    const uint64_t b_end = base + b.size();
    const uint64_t from = std::max(begin, base);
    const uint64_t to = std::min(end, b_end);
    if (from < to) out.push_back(b.slice(from - base, to - from));
    base = b_end;
    if (base >= end) break;
  }
}

// Bytes each spec takes, walking string length prefixes.
std::vector<uint64_t> byte_sizes(const WeightData& data, const std::vector<WeightSpec>& specs) {
  const uint64_t total = total_size(data);
  std::vector<uint64_t> sizes;
  sizes.reserve(specs.size());
  uint64_t offset = 0;
  auto short_data = [&](const WeightSpec& spec, uint64_t needed) {
    return Error(ErrorCode::kDataLoss, "weight '" + spec.name + "' needs bytes up to offset " +
                                           std::to_string(needed) + " but the weight data has " +
                                           std::to_string(total) + " bytes");
  };
  for (const WeightSpec& spec : specs) {
    uint64_t size = 0;
    if (const std::optional<uint64_t> fixed = fixed_byte_size(spec)) {
      size = *fixed;
    } else {
      uint64_t pos = offset;
      for (uint64_t e = 0, count = spec.element_count(); e < count; ++e) {
        if (total - pos < 4) throw short_data(spec, pos + 4);
        uint8_t prefix[4];
        copy_bytes(data, pos, 4, prefix);
        const uint64_t length = uint64_t(prefix[0]) | uint64_t(prefix[1]) << 8 |
                                uint64_t(prefix[2]) << 16 | uint64_t(prefix[3]) << 24;
        pos += 4;
        if (total - pos < length) throw short_data(spec, pos + length);
        pos += length;
      }
      size = pos - offset;
    }
    if (total - offset < size) throw short_data(spec, offset + size);
    offset += size;
    sizes.push_back(size);
  }
  return sizes;
}

// map_layers_to_quantization_dtype: the storage type chosen for each name.
std::map<std::string, QuantizeDType> choose(const std::vector<WeightSpec>& specs,
                                            const QuantizeOptions& options,
                                            std::vector<std::string>& unmatched) {
  std::map<std::string, QuantizeDType> chosen;
  std::optional<QuantizeDType> catch_all;
  std::vector<std::u32string> names;
  names.reserve(specs.size());
  for (const WeightSpec& spec : specs) names.push_back(code_points(spec.name));
  for (const QuantizeRule& rule : options.rules) {
    if (rule.patterns.empty()) {
      if (catch_all) {
        throw Error(ErrorCode::kInvalidArgument,
                    "more than one quantization catch-all given (" +
                        std::string(quantize_dtype_name(*catch_all)) + " and " +
                        std::string(quantize_dtype_name(rule.dtype)) +
                        "); exactly one rule may select every other weight");
      }
      catch_all = rule.dtype;
      continue;
    }
    for (const std::string& pattern : rule.patterns) {
      if (pattern.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "empty weight-name pattern in the " +
                        std::string(quantize_dtype_name(rule.dtype)) +
                        " quantization rule (it would match no weight)");
      }
      const std::vector<Token> tokens = translate(code_points(pattern));
      bool any = false;
      for (size_t i = 0; i < specs.size(); ++i) {
        if (!match(tokens, names[i])) continue;
        any = true;
        auto [it, fresh] = chosen.emplace(specs[i].name, rule.dtype);
        if (!fresh && it->second != rule.dtype) {
          throw Error(ErrorCode::kInvalidArgument,
                      "two quantization dtypes, " + std::string(quantize_dtype_name(it->second)) +
                          " and " + std::string(quantize_dtype_name(rule.dtype)) +
                          ", select the same weight '" + specs[i].name + "'");
        }
      }
      if (!any) unmatched.push_back(pattern);
    }
  }
  if (catch_all) {
    for (const WeightSpec& spec : specs) chosen.emplace(spec.name, *catch_all);
  }
  return chosen;
}

}  // namespace

std::optional<QuantizeDType> parse_quantize_dtype(std::string_view name) noexcept {
  if (name == "uint8") return QuantizeDType::kUint8;
  if (name == "uint16") return QuantizeDType::kUint16;
  if (name == "float16") return QuantizeDType::kFloat16;
  return std::nullopt;
}

std::string_view quantize_dtype_name(QuantizeDType dtype) noexcept {
  switch (dtype) {
    case QuantizeDType::kUint8:
      return "uint8";
    case QuantizeDType::kUint16:
      return "uint16";
    case QuantizeDType::kFloat16:
      return "float16";
  }
  return "?";
}

uint16_t float32_to_float16(float value) noexcept {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t exponent = (bits >> 23) & 0xffu;
  const uint32_t mantissa = bits & 0x7fffffu;
  if (exponent == 0xff) {
    if (mantissa == 0) return static_cast<uint16_t>(sign | 0x7c00u);
    const uint32_t payload = mantissa >> 13;
    return static_cast<uint16_t>(sign | 0x7c00u | (payload != 0 ? payload : 1u));  // still a NaN
  }
  const int half_exponent = static_cast<int>(exponent) - 127 + 15;
  if (half_exponent >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // too large: infinity
  // Round the significand to the half's precision, half to even. A carry out
  // of the significand bumps the exponent, which is the right encoding (and
  // turns 65520 and above into infinity).
  auto round_shift = [](uint32_t significand, int shift) {
    uint32_t kept = significand >> shift;
    const uint32_t rest = significand & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u))) ++kept;
    return kept;
  };
  if (half_exponent <= 0) {
    // Subnormal half (units of 2^-24) or zero. Below 2^-25 everything
    // (float32 subnormals included) rounds to a signed zero.
    if (half_exponent < -10) return sign;
    const int shift = 14 - half_exponent;
    return static_cast<uint16_t>(sign | round_shift(mantissa | 0x800000u, shift));
  }
  const uint32_t biased = static_cast<uint32_t>(half_exponent) << 10;
  return static_cast<uint16_t>(sign | (biased + round_shift(mantissa, 13)));
}

QuantizedTensor quantize_tensor(std::span<const float> values, QuantizeDType dtype,
                                ConverterNumpy numpy, std::string_view name) {
  switch (dtype) {
    case QuantizeDType::kUint8:
      return quantize_affine<uint8_t>(values, dtype, numpy, name);
    case QuantizeDType::kUint16:
      return quantize_affine<uint16_t>(values, dtype, numpy, name);
    case QuantizeDType::kFloat16:
      break;
  }
  QuantizedTensor out;
  out.quantization.dtype = "float16";
  out.quantization.original_dtype = "float32";
  out.bytes.resize(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t half = float32_to_float16(values[i]);
    if ((half & 0x7fffu) == 0x7c00u && std::isfinite(values[i])) ++out.overflowed;
    put<uint16_t>(out.bytes, i, half);
  }
  return out;
}

bool weight_name_matches(std::string_view pattern, std::string_view name) {
  return match(translate(code_points(pattern)), code_points(name));
}

size_t QuantizeReport::quantized_count() const {
  return static_cast<size_t>(std::count_if(weights.begin(), weights.end(), [](const Weight& w) {
    return w.action == Action::kQuantized;
  }));
}

QuantizeReport quantize_artifacts(ModelArtifacts& artifacts, const QuantizeOptions& options) {
  QuantizeReport report;
  static const WeightData kNoData;
  const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : kNoData;
  report.bytes_before = report.bytes_after = total_size(data);
  if (!artifacts.weight_specs) {
    choose({}, options, report.unmatched_patterns);  // still reports bad rules
    return report;
  }
  std::vector<WeightSpec> specs = *artifacts.weight_specs;
  const std::map<std::string, QuantizeDType> chosen =
      choose(specs, options, report.unmatched_patterns);
  const std::vector<uint64_t> sizes = byte_sizes(data, specs);

  WeightData out;
  std::vector<uint8_t> fresh;  // quantized bytes not yet wrapped in a Buffer
  auto flush_fresh = [&] {
    if (!fresh.empty()) out.push_back(Buffer::from_vector(std::move(fresh), "quantized weights"));
    fresh = {};
  };
  uint64_t offset = 0;
  uint64_t untouched_from = 0;  // start of the run of bytes kept as they are
  for (size_t i = 0; i < specs.size(); ++i) {
    WeightSpec& spec = specs[i];
    QuantizeReport::Weight& w = report.weights.emplace_back();
    w.name = spec.name;
    w.dtype = spec.dtype;
    w.bytes_before = w.bytes_after = sizes[i];
    if (spec.quantization) w.was = spec.quantization->dtype;
    const uint64_t begin = offset;
    offset += sizes[i];

    const auto selected = chosen.find(spec.name);
    if (selected == chosen.end()) continue;
    if (spec.dtype != "float32") {
      w.action = QuantizeReport::Action::kNotFloat32;
      continue;
    }
    w.to = selected->second;
    if (spec.element_count() == 0 && selected->second != QuantizeDType::kFloat16) {
      w.action = QuantizeReport::Action::kEmpty;
      continue;
    }
    WeightData slices;
    append_range(data, begin, offset, slices);
    const std::vector<Tensor> decoded = decode_weights(slices, {spec});
    QuantizedTensor q =
        quantize_tensor(decoded.front().floats, selected->second, options.numpy, spec.name);
    w.action = QuantizeReport::Action::kQuantized;
    w.bytes_after = q.bytes.size();
    w.overflowed = q.overflowed;
    spec.quantization = std::move(q.quantization);

    if (untouched_from < begin) {
      flush_fresh();
      append_range(data, untouched_from, begin, out);
    }
    untouched_from = offset;
    fresh.insert(fresh.end(), q.bytes.begin(), q.bytes.end());
  }
  if (report.quantized_count() == 0) return report;  // artifacts left exactly as they were

  flush_fresh();
  append_range(data, untouched_from, report.bytes_before, out);
  report.bytes_after = total_size(out);
  artifacts.weight_specs = std::move(specs);
  artifacts.weight_data = std::move(out);
  artifacts.weights_manifest.reset();
  return report;
}

}  // namespace stowage
