// --quantize DTYPE [--quantize-only NAMES] [--quantize-numpy 1|2] of `copy`
// and `move`: the Python converter's --quantize_uint8/uint16/float16, applied
// between load and save (stowage/quantize.hpp, docs/quantization.md).
#include <iostream>

#include "commands_internal.hpp"

namespace stowage::cli {
namespace {

std::string_view action_name(QuantizeReport::Action action) {
  switch (action) {
    case QuantizeReport::Action::kQuantized:
      return "quantized";
    case QuantizeReport::Action::kNotSelected:
      return "not selected";
    case QuantizeReport::Action::kNotFloat32:
      return "not float32";
    case QuantizeReport::Action::kEmpty:
      return "empty";
  }
  return "?";
}

}  // namespace

void add_quantize_options(CLI::App& sub, QuantizeArgs& args) {
  CLI::Option* dtype =
      sub.add_option("--quantize", args.dtype,
                     "Store float32 weights as uint8, uint16 (affine, min/scale per weight) or "
                     "float16, byte for byte as tensorflowjs_converter --quantize_DTYPE does; "
                     "other dtypes are left as they are")
          ->check(CLI::IsMember({"uint8", "uint16", "float16"}))
          ->option_text("DTYPE");
  sub.add_option("--quantize-only", args.only,
                 "Quantize only the weights whose names match these comma-separated patterns "
                 "(fnmatch: * ? [seq] [!seq], e.g. 'dense*/kernel,conv?/bias'; repeatable)")
      ->expected(1)
      ->allow_extra_args(false)  // one list per occurrence: SRC and DST may follow
      ->take_all()
      ->needs(dtype)
      ->option_text("NAMES");
  sub.add_option("--quantize-numpy", args.numpy,
                 "Reproduce the converter run under NumPy 2 (default: float64 arithmetic) or "
                 "NumPy 1 (float32 arithmetic; a few stored values differ by one step)")
      ->check(CLI::IsMember({"1", "2"}))
      ->needs(dtype)
      ->option_text("1|2");
}

std::optional<QuantizeOptions> quantize_options(const QuantizeArgs& args) {
  if (args.dtype.empty()) return std::nullopt;
  QuantizeOptions options;
  options.numpy = args.numpy == "1" ? ConverterNumpy::kNumpy1 : ConverterNumpy::kNumpy2;
  QuantizeRule rule;
  rule.dtype = *parse_quantize_dtype(args.dtype);
  for (const std::string& list : args.only) {
    // The converter splits the flag's value at commas, nothing more.
    for (size_t start = 0;;) {
      const size_t comma = list.find(',', start);
      std::string pattern = list.substr(start, comma - start);
      if (pattern.empty()) {
        throw UsageError("--quantize-only '" + list + "': empty pattern (a stray comma?)");
      }
      rule.patterns.push_back(std::move(pattern));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  options.rules.push_back(std::move(rule));
  return options;
}

std::string quantize_summary(const QuantizeOptions& options, const QuantizeReport& report) {
  const std::string dtype(quantize_dtype_name(options.rules.front().dtype));
  std::string out = "  quantized:           " + std::to_string(report.quantized_count()) + " of " +
                    std::to_string(report.weights.size()) + " weights to " + dtype +
                    (options.numpy == ConverterNumpy::kNumpy1 ? " (NumPy 1 rules)" : "") + ", " +
                    std::to_string(report.bytes_before) + " -> " +
                    std::to_string(report.bytes_after) + " bytes\n";
  std::string left;
  size_t listed = 0, more = 0;
  for (const QuantizeReport::Weight& w : report.weights) {
    if (w.action != QuantizeReport::Action::kNotFloat32 &&
        w.action != QuantizeReport::Action::kEmpty) {
      continue;
    }
    if (listed == 8) {
      ++more;
      continue;
    }
    left += (listed++ ? ", " : "") + w.name + " (" +
            (w.action == QuantizeReport::Action::kEmpty ? "empty" : w.dtype) + ")";
  }
  if (more) left += ", ... and " + std::to_string(more) + " more";
  if (!left.empty()) out += "    left as they are:  " + left + "\n";
  return out;
}

void quantize_warnings(const QuantizeReport& report) {
  for (const std::string& pattern : report.unmatched_patterns) {
    std::cerr << "warning: --quantize-only pattern '" << pattern << "' matched no weight\n";
  }
  for (const QuantizeReport::Weight& w : report.weights) {
    if (w.overflowed) {
      std::cerr << "warning: weight '" << w.name << "': " << w.overflowed
                << " value(s) beyond the float16 range (+-65504) became infinite\n";
    }
    if (w.action == QuantizeReport::Action::kEmpty) {
      std::cerr << "warning: weight '" << w.name
                << "' has no values and was left as float32 (the Python converter fails on "
                   "it)\n";
    }
  }
}

void quantize_json(JsonWriter& w, const QuantizeOptions* options, const QuantizeReport* report) {
  if (options == nullptr || report == nullptr) {
    w.null();
    return;
  }
  const QuantizeRule& rule = options->rules.front();
  w.begin_object();
  w.key("dtype").string(quantize_dtype_name(rule.dtype));
  w.key("numpy").uint(options->numpy == ConverterNumpy::kNumpy1 ? 1 : 2);
  w.key("patterns");
  if (rule.patterns.empty()) {
    w.null();
  } else {
    w.begin_array();
    for (const std::string& p : rule.patterns) w.string(p);
    w.end_array();
  }
  w.key("quantized").uint(report->quantized_count());
  w.key("bytesBefore").uint(report->bytes_before);
  w.key("bytesAfter").uint(report->bytes_after);
  w.key("unmatchedPatterns").begin_array();
  for (const std::string& p : report->unmatched_patterns) w.string(p);
  w.end_array();
  w.key("weights").begin_array();
  for (const QuantizeReport::Weight& x : report->weights) {
    w.begin_object();
    w.key("name").string(x.name);
    w.key("dtype").string(x.dtype);
    w.key("action").string(action_name(x.action));
    w.key("storedAs");
    x.to&& x.action == QuantizeReport::Action::kQuantized ? w.string(quantize_dtype_name(*x.to))
                                                          : w.nullable_string(x.was);
    w.key("bytesBefore").uint(x.bytes_before);
    w.key("bytesAfter").uint(x.bytes_after);
    w.key("overflowed").uint(x.overflowed);
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

}  // namespace stowage::cli
