// marker:// and markers:// — a load-only store of one fixed model whose
// model.json records a SHA-256 for each of its three weight files, for the
// tests of abi.h sink_mark_verified (ABI 1.4): the plugin can hand over
// bytes that do not match their recorded digest and say, or not, that it
// checked them. markers:// declares STOWAGE_CAP_STREAMING_LOAD, so its
// buffers reach the host through sink_put_buffer one by one (a streamed
// copy checks each as it arrives); marker:// hands them over whole.
//
// USAGE
//   marker://<anything>, markers://<anything>
//   Options (each a comma-separated list of buffer indexes, 0 to 2):
//     "bad"         these files' bytes differ from the digest model.json
//                   records (their first byte flipped)
//     "mark"        marked verified with the digest model.json records for
//                   the file (what the cache does after checking a blob)
//     "mark_other"  marked verified with the digest of the bytes handed
//                   over, which for a "bad" file is not the recorded one
#include <set>
#include <string>
#include <vector>

#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"

namespace {

using namespace stowage;

constexpr size_t kFiles = 3;
constexpr size_t kFileBytes = 8;  // two float32 values each

std::set<size_t> indexes(const std::string& list, const std::string& key, const std::string& url) {
  std::set<size_t> out;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(start, end - start);
    if (item.size() != 1 || item[0] < '0' || item[0] >= static_cast<char>('0' + kFiles)) {
      throw Error(ErrorCode::kInvalidArgument, url + ": option \"" + key + "\" has '" + item +
                                                   "', not a buffer index from 0 to 2");
    }
    out.insert(static_cast<size_t>(item[0] - '0'));
    start = end + 1;
  }
  return out;
}

// The stored bytes of file `i`: 8 bytes that differ from file to file.
std::vector<uint8_t> good_bytes(size_t i) {
  std::vector<uint8_t> bytes(kFileBytes);
  for (size_t k = 0; k < kFileBytes; ++k) bytes[k] = static_cast<uint8_t>(16 * i + k + 1);
  return bytes;
}

class MarkerHandler : public plugin::Handler {
 public:
  MarkerHandler(std::string_view url, plugin::Options& options)
      : Handler(url),
        bad_(indexes(options.get_string("bad"), "bad", this->url())),
        mark_(indexes(options.get_string("mark"), "mark", this->url())),
        mark_other_(indexes(options.get_string("mark_other"), "mark_other", this->url())) {}

  ModelArtifacts load(plugin::Call& call) override {
    WeightGroup group;
    group.weights.push_back(
        {"w", {static_cast<int64_t>(kFiles * kFileBytes / 4)}, "float32", {}, {}});
    group.sha256.emplace();
    WeightData data;
    for (size_t i = 0; i < kFiles; ++i) {
      group.paths.push_back("w" + std::to_string(i + 1) + ".bin");
      std::vector<uint8_t> bytes = good_bytes(i);
      group.sha256->push_back(sha256_hex(bytes));
      if (bad_.count(i) != 0) bytes[0] ^= 0xff;
      if (mark_.count(i) != 0) call.mark_verified(i, group.sha256->back());
      if (mark_other_.count(i) != 0) call.mark_verified(i, sha256_hex(bytes));
      data.push_back(Buffer::copy_of(bytes, url() + "/" + group.paths.back()));
    }
    ModelArtifacts a;
    a.model_topology = R"({"class_name":"Sequential","config":{"name":"marker"}})";
    a.format = "layers-model";
    a.weights_manifest = std::vector<WeightGroup>{group};
    a.weight_specs = flatten_specs(*a.weights_manifest);
    a.weight_data = std::move(data);
    return a;
  }

 private:
  const std::set<size_t> bad_;
  const std::set<size_t> mark_;
  const std::set<size_t> mark_other_;
};

}  // namespace

STOWAGE_PLUGIN_SCHEMES(MarkerHandler, "marker", "1.0.0", 0, {"marker", STOWAGE_CAP_LOAD},
                       {"markers", STOWAGE_CAP_LOAD | STOWAGE_CAP_STREAMING_LOAD});
