#include <algorithm>
#include <set>

#include "stowage/error.hpp"
#include "stowage/model_json.hpp"
#include "stowage/weights.hpp"
#include "upload_internal.hpp"

namespace stowage::serve {
namespace {

constexpr uint64_t kMinBlock = 64 * 1024;
constexpr uint64_t kMaxBlock = 64ull << 20;
constexpr uint64_t kMaxFirstBlock = 256ull << 20;

}  // namespace

std::string manifest_file_name(std::string_view path) {
  while (path.size() > 2 && path.substr(0, 2) == "./") path.remove_prefix(2);
  return std::string(path);
}

UploadCollector::UploadCollector(std::string source, uint64_t max_model_json_bytes,
                                 uint64_t size_hint)
    : source_(std::move(source)), max_json_(max_model_json_bytes), size_hint_(size_hint) {}

void UploadCollector::on_part_begin(const PartHeaders& headers) {
  if (headers.name.empty()) {
    throw Error(ErrorCode::kInvalidArgument, source_ + ": a part has an empty name");
  }
  if (headers.name == "model.json") {
    if (have_json_) {
      throw Error(ErrorCode::kInvalidArgument, source_ + ": two parts are named model.json");
    }
    have_json_ = true;
    in_json_ = true;
    return;
  }
  auto [it, inserted] = parts_.try_emplace(headers.name);
  if (!inserted) {
    throw Error(ErrorCode::kInvalidArgument,
                source_ + ": two parts are named '" + headers.name + "'");
  }
  open_ = &it->second;
}

void UploadCollector::seal(Part& part) {
  if (!part.current.empty()) {
    part.blocks.push_back(Buffer::from_vector(std::move(part.current)));
  }
  part.current = {};
}

void UploadCollector::on_part_data(std::string_view bytes) {
  if (in_json_) {
    if (json_.size() + bytes.size() > max_json_) {
      throw Error(ErrorCode::kResourceExhausted, source_ + ": the model.json part is larger than " +
                                                     std::to_string(max_json_) + " bytes");
    }
    json_.append(bytes);
    return;
  }
  Part& part = *open_;
  while (!bytes.empty()) {
    if (part.current.capacity() == part.current.size()) {
      seal(part);
      uint64_t want;
      if (part.size == 0 && size_hint_ > 0) {
        want = std::min(size_hint_, kMaxFirstBlock);
        size_hint_ = 0;  // the hint is for the first (normally the only) weights part
      } else {
        want = std::clamp<uint64_t>(part.size, kMinBlock, kMaxBlock);
      }
      part.current.reserve(static_cast<size_t>(std::max(want, kMinBlock)));
    }
    const size_t room = part.current.capacity() - part.current.size();
    const size_t n = std::min(room, bytes.size());
    part.current.insert(part.current.end(), bytes.begin(), bytes.begin() + static_cast<long>(n));
    part.hash.update(bytes.substr(0, n));
    part.size += n;
    bytes.remove_prefix(n);
  }
}

void UploadCollector::on_part_end() {
  if (in_json_) {
    in_json_ = false;
    return;
  }
  seal(*open_);
  open_->sha256 = open_->hash.finish_hex();
  open_ = nullptr;
}

ModelArtifacts UploadCollector::take_artifacts() {
  if (!have_json_) {
    throw Error(ErrorCode::kInvalidArgument,
                source_ +
                    ": the upload has no part named model.json (TF.js's model.save sends "
                    "the parts model.json and model.weights.bin)");
  }
  ModelArtifacts a = parse_model_json(json_, source_ + ": model.json");
  json_.clear();
  if (!a.model_topology && !a.weights_manifest && !a.weight_specs) {
    throw Error(ErrorCode::kInvalidArgument,
                source_ + ": model.json contains neither modelTopology nor weightsManifest");
  }

  WeightData data;
  std::set<std::string> used;
  const bool needs_bytes = a.weight_specs && !a.weight_specs->empty();
  if (a.weights_manifest) {
    for (const WeightGroup& group : *a.weights_manifest) {
      for (size_t k = 0; k < group.paths.size(); ++k) {
        const std::string& path = group.paths[k];
        const std::string file = manifest_file_name(path);
        auto it = parts_.find(file);
        if (it == parts_.end()) {
          if (!needs_bytes) continue;  // TF.js names ./model.weights.bin even with no weights
          throw Error(ErrorCode::kInvalidArgument,
                      source_ + ": the weights manifest of model.json names '" + path +
                          "' but the upload has no part named '" + file + "'");
        }
        if (!used.insert(file).second) {
          throw Error(ErrorCode::kInvalidArgument,
                      source_ + ": the weights manifest names '" + file + "' twice");
        }
        // The sender recorded what it sent: a part that differs was damaged
        // on the way, and is not stored.
        if (group.sha256 && (*group.sha256)[k] != it->second.sha256) {
          throw Error(ErrorCode::kDataLoss,
                      source_ + ": the weights file '" + file + "' (" +
                          std::to_string(it->second.size) +
                          " bytes) does not match its digest in model.json: expected sha-256 "
                          "(hex) " +
                          (*group.sha256)[k] + ", got " + it->second.sha256);
        }
        for (Buffer& b : it->second.blocks) data.push_back(std::move(b));
      }
    }
  } else if (parts_.size() == 1) {
    // A flat weightSpecs (the artifacts form) and one weights part.
    used.insert(parts_.begin()->first);
    for (Buffer& b : parts_.begin()->second.blocks) data.push_back(std::move(b));
  }
  for (const auto& [name, part] : parts_) {
    if (!used.count(name)) {
      throw Error(ErrorCode::kInvalidArgument,
                  source_ + ": the part '" + name +
                      "' is neither model.json nor a weights file its manifest names");
    }
  }
  parts_.clear();

  a.weights_manifest.reset();  // the store chooses its own file layout
  if (a.weight_specs) {
    a.weight_data = std::move(data);
    validate_weight_bytes(a, source_);
  }
  return a;
}

}  // namespace stowage::serve
