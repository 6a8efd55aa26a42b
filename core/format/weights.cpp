#include "stowage/weights.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage {
namespace {

constexpr uint64_t kStringLengthBytes = 4;

// Reads the concatenation of a WeightData front to back, copying across
// buffer boundaries (tensors are unaligned and may span shards).
class Cursor {
 public:
  explicit Cursor(const WeightData& data) : data_(data), total_(total_size(data)) {}

  uint64_t position() const { return position_; }
  uint64_t total() const { return total_; }
  uint64_t remaining() const { return total_ - position_; }

  // REQUIRES: n <= remaining().
  void read(uint8_t* dst, uint64_t n) {
    while (n > 0) {
      const Buffer& b = data_[index_];
      const uint64_t take = std::min(n, b.size() - within_);
      if (take == 0 && index_ + 1 >= data_.size()) past_end();
      if (take > 0) {
        std::memcpy(dst, b.data() + within_, static_cast<size_t>(take));
        dst += take;
        n -= take;
        within_ += take;
        position_ += take;
      }
      if (within_ == b.size() && index_ + 1 < data_.size()) {
        ++index_;
        within_ = 0;
      }
    }
  }

  uint32_t read_u32() {
    uint8_t b[4];
    read(b, 4);
    return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
           static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
  }

  // REQUIRES: position <= total().
  void seek(uint64_t position) {
    if (position < position_) {
      position_ = 0;
      index_ = 0;
      within_ = 0;
    }
    uint64_t skip = position - position_;
    while (skip > 0) {
      const uint64_t take = std::min(skip, data_[index_].size() - within_);
      if (take == 0 && index_ + 1 >= data_.size()) past_end();
      skip -= take;
      within_ += take;
      position_ += take;
      if (within_ == data_[index_].size() && index_ + 1 < data_.size()) {
        ++index_;
        within_ = 0;
      }
    }
    while (index_ + 1 < data_.size() && within_ == data_[index_].size()) {
      ++index_;
      within_ = 0;
    }
  }

 private:
  // Callers check sizes first; this only keeps a broken caller from looping.
  [[noreturn]] void past_end() const {
    throw Error(ErrorCode::kInternal,
                "read past the end of " + std::to_string(total_) + " bytes of weight data");
  }

  const WeightData& data_;
  uint64_t total_;
  uint64_t position_ = 0;
  size_t index_ = 0;     // buffer holding position_ (or the last one)
  uint64_t within_ = 0;  // offset of position_ in that buffer
};

enum class Storage { kPlain, kUint8, kUint16, kFloat16 };

struct Layout {
  DType dtype;
  Storage storage;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

uint64_t checked_count(const std::string& name, const std::vector<int64_t>& shape) {
  WeightSpec probe;
  probe.name = name;
  probe.shape = shape;
  return probe.element_count();
}

Error unsupported_dtype(const WeightSpec& spec) {
  return Error(ErrorCode::kInvalidArgument,
               "Unsupported dtype in weight '" + spec.name + "': " + spec.dtype);
}

// The checks of TF.js decodeWeight, in its order and with its messages.
Layout layout_of(const WeightSpec& spec) {
  Storage storage = Storage::kPlain;
  if (spec.quantization) {
    const Quantization& q = *spec.quantization;
    if (q.dtype == "uint8" || q.dtype == "uint16") {
      if (!q.min || !q.scale) {
        throw Error(ErrorCode::kInvalidArgument,
                    "Weight " + spec.name + " with quantization " + q.dtype +
                        " doesn't have corresponding metadata min and scale.");
      }
      storage = q.dtype == "uint8" ? Storage::kUint8 : Storage::kUint16;
    } else if (q.dtype == "float16") {
      if (spec.dtype != "float32") {
        throw Error(ErrorCode::kInvalidArgument,
                    "Weight " + spec.name + " is quantized with float16 which only supports " +
                        "weights of type float32 not " + spec.dtype + ".");
      }
      storage = Storage::kFloat16;
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  "Weight " + spec.name + " has unknown quantization dtype " + q.dtype +
                      ". Supported quantization dtypes are: 'uint8', 'uint16', and 'float16'.");
    }
  }
  const std::optional<DType> dtype = parse_dtype(spec.dtype);
  if (!dtype) throw unsupported_dtype(spec);
  if (storage != Storage::kPlain && *dtype != DType::kFloat32 && *dtype != DType::kInt32) {
    throw unsupported_dtype(spec);
  }
  return Layout{*dtype, storage};
}

uint64_t bytes_per_element(const Layout& l) {
  switch (l.storage) {
    case Storage::kUint8:
      return 1;
    case Storage::kUint16:
    case Storage::kFloat16:
      return 2;
    case Storage::kPlain:
      break;
  }
  switch (l.dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kBool:
      return 1;
    case DType::kComplex64:
      return 8;
    case DType::kString:
      break;
  }
  return 0;
}

// JS Math.round (halves toward +infinity), then ToInt32 (wraps modulo 2^32).
int32_t js_round_to_int32(double x) {
  if (!std::isfinite(x)) return 0;
  double r = std::floor(x);
  if (x - r >= 0.5) r += 1;
  double m = std::fmod(r, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  const uint32_t bits = static_cast<uint32_t>(m);
  return static_cast<int32_t>(bits);
}

template <typename T>
void from_little_endian(std::vector<T>& values) {
  if constexpr (std::endian::native == std::endian::big) {
    for (T& v : values) {
      uint8_t b[sizeof(T)];
      std::memcpy(b, &v, sizeof(T));
      std::reverse(b, b + sizeof(T));
      std::memcpy(&v, b, sizeof(T));
    }
  }
}

template <typename T>
void append_little_endian(std::vector<uint8_t>& out, const std::vector<T>& values) {
  const size_t start = out.size();
  out.resize(start + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data() + start, values.data(), values.size() * sizeof(T));
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = start; i < out.size(); i += sizeof(T)) {
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(i),
                   out.begin() + static_cast<std::ptrdiff_t>(i + sizeof(T)));
    }
  }
}

template <typename T>
std::vector<T> read_values(Cursor& cursor, uint64_t count) {
  std::vector<T> values(static_cast<size_t>(count));
  cursor.read(reinterpret_cast<uint8_t*>(values.data()), count * sizeof(T));
  from_little_endian(values);
  return values;
}

Error truncated(const WeightSpec& spec, uint64_t needed, const Cursor& cursor) {
  return Error(ErrorCode::kDataLoss,
               "weight '" + spec.name + "' (" + spec.dtype + ", shape " + shape_text(spec.shape) +
                   ") needs " + std::to_string(needed) + " bytes at offset " +
                   std::to_string(cursor.position()) + " but the weight data holds " +
                   std::to_string(cursor.total()) + " bytes");
}

}  // namespace

std::optional<DType> parse_dtype(std::string_view name) noexcept {
  if (name == "float32") return DType::kFloat32;
  if (name == "int32") return DType::kInt32;
  if (name == "bool") return DType::kBool;
  if (name == "string") return DType::kString;
  if (name == "complex64") return DType::kComplex64;
  return std::nullopt;
}

std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kInt32:
      return "int32";
    case DType::kBool:
      return "bool";
    case DType::kString:
      return "string";
    case DType::kComplex64:
      return "complex64";
  }
  return "unknown";
}

uint64_t Tensor::element_count() const { return checked_count(name, shape); }

float float16_to_float32(uint16_t half) noexcept {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {
      // Subnormal: m * 2^-24, a normal float32 (exact).
      const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
      std::memcpy(&bits, &magnitude, sizeof bits);
      bits |= sign;
    }
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // infinities; NaN keeps its payload
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

std::optional<uint64_t> fixed_byte_size(const WeightSpec& spec) {
  const Layout l = layout_of(spec);
  if (l.dtype == DType::kString && l.storage == Storage::kPlain) return std::nullopt;
  uint64_t bytes;
  if (__builtin_mul_overflow(spec.element_count(), bytes_per_element(l), &bytes)) {
    throw Error(ErrorCode::kInvalidArgument, "weight '" + spec.name + "' with shape " +
                                                 shape_text(spec.shape) +
                                                 " would take more than 2^64 bytes");
  }
  return bytes;
}

std::vector<Tensor> decode_weights(const WeightData& data, const std::vector<WeightSpec>& specs) {
  Cursor cursor(data);
  std::vector<Tensor> out;
  out.reserve(specs.size());
  for (const WeightSpec& spec : specs) {
    const Layout l = layout_of(spec);
    const uint64_t count = spec.element_count();
    Tensor t;
    t.name = spec.name;
    t.dtype = l.dtype;
    t.shape = spec.shape;
    if (l.dtype == DType::kString && l.storage == Storage::kPlain) {
      t.strings.reserve(static_cast<size_t>(std::min(count, cursor.remaining() / 4)));
      for (uint64_t i = 0; i < count; ++i) {
        if (cursor.remaining() < kStringLengthBytes) {
          throw Error(ErrorCode::kDataLoss,
                      "string weight '" + spec.name + "': the weight data ends at byte " +
                          std::to_string(cursor.total()) + " before the length of element " +
                          std::to_string(i) + " of " + std::to_string(count));
        }
        const uint32_t length = cursor.read_u32();
        if (length > cursor.remaining()) {
          throw Error(ErrorCode::kDataLoss,
                      "string weight '" + spec.name + "': element " + std::to_string(i) +
                          " has a length prefix of " + std::to_string(length) + " bytes at byte " +
                          std::to_string(cursor.position() - 4) + " but only " +
                          std::to_string(cursor.remaining()) + " bytes of weight data follow");
        }
        std::string s(length, '\0');
        cursor.read(reinterpret_cast<uint8_t*>(s.data()), length);
        t.strings.push_back(std::move(s));
      }
      out.push_back(std::move(t));
      continue;
    }
    const uint64_t bytes = *fixed_byte_size(spec);
    if (bytes > cursor.remaining()) throw truncated(spec, bytes, cursor);
    switch (l.storage) {
      case Storage::kPlain:
        switch (l.dtype) {
          case DType::kFloat32:
            t.floats = read_values<float>(cursor, count);
            break;
          case DType::kComplex64:
            t.floats = read_values<float>(cursor, count * 2);
            break;
          case DType::kInt32:
            t.ints = read_values<int32_t>(cursor, count);
            break;
          case DType::kBool:
            t.bools = read_values<uint8_t>(cursor, count);
            break;
          case DType::kString:
            break;  // handled above
        }
        break;
      case Storage::kUint8:
      case Storage::kUint16: {
        std::vector<uint16_t> q;
        if (l.storage == Storage::kUint8) {
          const std::vector<uint8_t> raw = read_values<uint8_t>(cursor, count);
          q.assign(raw.begin(), raw.end());
        } else {
          q = read_values<uint16_t>(cursor, count);
        }
        const double scale = *spec.quantization->scale;
        const double min = *spec.quantization->min;
        if (l.dtype == DType::kFloat32) {
          t.floats.resize(q.size());
          for (size_t i = 0; i < q.size(); ++i) {
            t.floats[i] = static_cast<float>(q[i] * scale + min);
          }
        } else {
          t.ints.resize(q.size());
          for (size_t i = 0; i < q.size(); ++i) t.ints[i] = js_round_to_int32(q[i] * scale + min);
        }
        break;
      }
      case Storage::kFloat16: {
        const std::vector<uint16_t> halves = read_values<uint16_t>(cursor, count);
        t.floats.resize(halves.size());
        for (size_t i = 0; i < halves.size(); ++i) t.floats[i] = float16_to_float32(halves[i]);
        break;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

EncodedWeights encode_weights(const std::vector<Tensor>& tensors,
                              const std::optional<std::string>& group) {
  EncodedWeights encoded;
  encoded.specs.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    const uint64_t count = t.element_count();
    auto check = [&](uint64_t have, uint64_t per_element) {
      if (have != count * per_element) {
        throw Error(ErrorCode::kInvalidArgument,
                    "tensor '" + t.name + "' (" + std::string(dtype_name(t.dtype)) + ", shape " +
                        shape_text(t.shape) + ") has " + std::to_string(have) +
                        " values; its shape needs " + std::to_string(count * per_element));
      }
    };
    switch (t.dtype) {
      case DType::kFloat32:
        check(t.floats.size(), 1);
        append_little_endian(encoded.data, t.floats);
        break;
      case DType::kComplex64:
        check(t.floats.size(), 2);
        append_little_endian(encoded.data, t.floats);
        break;
      case DType::kInt32:
        check(t.ints.size(), 1);
        append_little_endian(encoded.data, t.ints);
        break;
      case DType::kBool:
        check(t.bools.size(), 1);
        for (uint8_t b : t.bools) encoded.data.push_back(b != 0 ? 1 : 0);
        break;
      case DType::kString:
        check(t.strings.size(), 1);
        for (const std::string& s : t.strings) {
          if (s.size() > std::numeric_limits<uint32_t>::max()) {
            throw Error(ErrorCode::kInvalidArgument,
                        "tensor '" + t.name + "' holds a string of " + std::to_string(s.size()) +
                            " bytes; the format stores at most 2^32 - 1");
          }
          const uint32_t n = static_cast<uint32_t>(s.size());
          const uint8_t prefix[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8),
                                     static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 24)};
          encoded.data.insert(encoded.data.end(), prefix, prefix + 4);
          encoded.data.insert(encoded.data.end(), s.begin(), s.end());
        }
        break;
    }
    WeightSpec spec;
    spec.name = t.name;
    spec.shape = t.shape;
    spec.dtype = std::string(dtype_name(t.dtype));
    spec.group = group;
    encoded.specs.push_back(std::move(spec));
  }
  return encoded;
}

namespace {

// What a list of specs requires of the bytes they are read from.
struct Requirement {
  uint64_t bytes = 0;
  bool at_least = false;  // string sizes past the end of the data are unknown
  std::string detail;     // why, when at_least
};

Requirement required_bytes(const std::vector<WeightSpec>& specs, const WeightData& data) {
  Requirement need;
  Cursor cursor(data);
  auto add = [&](const WeightSpec& spec, uint64_t n) {
    if (__builtin_add_overflow(need.bytes, n, &need.bytes)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the weights up to '" + spec.name + "' would take more than 2^64 bytes");
    }
  };
  for (const WeightSpec& spec : specs) {
    if (const std::optional<uint64_t> fixed = fixed_byte_size(spec)) {
      add(spec, *fixed);
      continue;
    }
    const uint64_t count = spec.element_count();
    for (uint64_t i = 0; i < count; ++i) {
      if (need.at_least || need.bytes > cursor.total() ||
          cursor.total() - need.bytes < kStringLengthBytes) {
        if (!need.at_least) {
          need.at_least = true;
          need.detail = "string weight '" + spec.name + "' element " + std::to_string(i) + " of " +
                        std::to_string(count) +
                        " starts past the end of the bytes, so its length is unknown";
        }
        // Each remaining element takes at least its length prefix.
        uint64_t rest;
        if (__builtin_mul_overflow(count - i, kStringLengthBytes, &rest)) rest = UINT64_MAX;
        add(spec, rest);
        break;
      }
      cursor.seek(need.bytes);
      const uint32_t length = cursor.read_u32();
      add(spec, kStringLengthBytes + length);
      if (need.bytes > cursor.total()) {
        need.at_least = true;
        need.detail = "the length prefix of string weight '" + spec.name + "' element " +
                      std::to_string(i) + " at byte " + std::to_string(cursor.position() - 4) +
                      " says " + std::to_string(length) + " bytes, which runs past the end";
      }
    }
  }
  return need;
}

// "<!DOCTYPE html>..." where weights should be: a web server's error page.
bool looks_like_html(const Buffer& b) {
  std::string head(b.view().substr(0, 512));
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t start = head.find_first_not_of(" \t\r\n");
  if (start == std::string::npos || head[start] != '<') return false;
  return head.find("<html") != std::string::npos || head.find("<!doctype") != std::string::npos ||
         head.find("<head") != std::string::npos || head.find("<body") != std::string::npos;
}

std::string describe_buffers(const WeightData& data, const std::vector<std::string>* paths) {
  constexpr size_t kMaxListed = 64;
  std::string s;
  for (size_t i = 0; i < data.size() && i < kMaxListed; ++i) {
    if (i != 0) s += ", ";
    const Buffer& b = data[i];
    std::string where;
    if (paths != nullptr) {
      s += (*paths)[i];
      where = b.label().empty() || b.label() == (*paths)[i] ? "" : b.label() + ", ";
    } else {
      s += b.label().empty() ? "buffer " + std::to_string(i + 1) : b.label();
    }
    s += " (" + where + std::to_string(b.size()) + " bytes";
    if (looks_like_html(b)) s += ", looks like an HTML page, not weights";
    s += ")";
  }
  if (data.size() > kMaxListed) s += ", and " + std::to_string(data.size() - kMaxListed) + " more";
  return s;
}

}  // namespace

void validate_weight_bytes(const ModelArtifacts& artifacts, std::string_view source) {
  const WeightData no_data;
  const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : no_data;
  const std::string prefix = "model.json at " + std::string(source) + ": ";
  auto rethrow = [&](const Error& e) { throw Error(e.code(), prefix + e.what()); };

  size_t path_count = 0;
  if (artifacts.weights_manifest) {
    for (const WeightGroup& g : *artifacts.weights_manifest) path_count += g.paths.size();
  }
  if (artifacts.weights_manifest && path_count == data.size()) {
    size_t first = 0;
    for (size_t g = 0; g < artifacts.weights_manifest->size(); ++g) {
      const WeightGroup& group = (*artifacts.weights_manifest)[g];
      const WeightData group_data(
          data.begin() + static_cast<std::ptrdiff_t>(first),
          data.begin() + static_cast<std::ptrdiff_t>(first + group.paths.size()));
      first += group.paths.size();
      Requirement need;
      try {
        need = required_bytes(group.weights, group_data);
      } catch (const Error& e) {
        rethrow(e);
      }
      const uint64_t have = total_size(group_data);
      if (!need.at_least && need.bytes == have) continue;
      throw Error(
          ErrorCode::kDataLoss,
          prefix + "weight group " + std::to_string(g + 1) + " (" +
              std::to_string(group.weights.size()) + " weights) needs " +
              (need.at_least ? "at least " : "") + std::to_string(need.bytes) + " bytes but its " +
              std::to_string(group.paths.size()) + " shard(s) hold " + std::to_string(have) +
              " bytes" +
              (group_data.empty() ? "" : ": " + describe_buffers(group_data, &group.paths)) +
              (need.detail.empty() ? "" : "; " + need.detail));
    }
    return;
  }

  const std::vector<WeightSpec> specs =
      artifacts.weight_specs
          ? *artifacts.weight_specs
          : (artifacts.weights_manifest ? flatten_specs(*artifacts.weights_manifest)
                                        : std::vector<WeightSpec>{});
  Requirement need;
  try {
    need = required_bytes(specs, data);
  } catch (const Error& e) {
    rethrow(e);
  }
  const uint64_t have = total_size(data);
  if (!need.at_least && need.bytes == have) return;
  throw Error(ErrorCode::kDataLoss,
              prefix + "the weights (" + std::to_string(specs.size()) + " specs) need " +
                  (need.at_least ? "at least " : "") + std::to_string(need.bytes) +
                  " bytes but the weight data holds " + std::to_string(have) + " bytes" +
                  (data.empty() ? ""
                                : " in " + std::to_string(data.size()) +
                                      " buffer(s): " + describe_buffers(data, nullptr)) +
                  (need.detail.empty() ? "" : "; " + need.detail));
}

}  // namespace stowage
