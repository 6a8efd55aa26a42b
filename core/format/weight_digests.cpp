// verify_weight_digests: every weight file against the SHA-256 its manifest
// group records, hashed on all cores.
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "stowage/digest.hpp"
#include "stowage/weights.hpp"

namespace stowage {
namespace {

struct Job {
  size_t group;
  size_t file;
  size_t buffer;  // index into the weight data
  std::string actual;
};

std::string file_count_text(size_t n) { return std::to_string(n) + (n == 1 ? " file" : " files"); }

// Hashes every job's buffer on all cores.
void hash_all(std::vector<Job>& jobs, const WeightData& data) {
  std::vector<std::span<const uint8_t>> buffers;
  buffers.reserve(jobs.size());
  for (const Job& job : jobs) buffers.push_back(data[job.buffer].bytes());
  std::vector<std::string> hex = sha256_hex_each(buffers);
  for (size_t i = 0; i < jobs.size(); ++i) jobs[i].actual = std::move(hex[i]);
}

}  // namespace

size_t recorded_digest_count(const std::vector<WeightGroup>& manifest) noexcept {
  size_t n = 0;
  for (const WeightGroup& g : manifest) {
    if (g.sha256) n += g.paths.size();
  }
  return n;
}

Error weight_digest_mismatch(std::string_view source, const std::vector<WeightGroup>& manifest,
                             size_t group, size_t file, const Buffer& buffer,
                             std::string_view actual) {
  const WeightGroup& g = manifest[group];
  const std::string& path = g.paths[file];
  const std::string where = buffer.label().empty() ? "" : buffer.label() + ", ";
  return Error(ErrorCode::kDataLoss,
               "model.json at " + std::string(source) + ": weight group " +
                   std::to_string(group + 1) + " file " + std::to_string(file + 1) + " of " +
                   std::to_string(g.paths.size()) + " '" + path + "' (" + where +
                   std::to_string(buffer.size()) + " bytes) has SHA-256 " + std::string(actual) +
                   ", but model.json records " + (*g.sha256)[file]);
}

size_t verify_weight_digests(const ModelArtifacts& artifacts, std::string_view source) {
  return verify_weight_digests(artifacts, source, {});
}

size_t verify_weight_digests(const ModelArtifacts& artifacts, std::string_view source,
                             const std::map<uint64_t, std::string>& checked) {
  if (!artifacts.weights_manifest) return 0;
  const std::vector<WeightGroup>& manifest = *artifacts.weights_manifest;
  const size_t recorded = recorded_digest_count(manifest);
  if (recorded == 0) return 0;
  const WeightData no_data;
  const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : no_data;
  size_t path_count = 0;
  for (const WeightGroup& g : manifest) path_count += g.paths.size();
  if (data.size() != path_count) {
    throw Error(ErrorCode::kInternal,
                "model.json at " + std::string(source) + " records SHA-256 digests for " +
                    file_count_text(recorded) + ", but its load handed over " +
                    std::to_string(data.size()) + " weight buffer(s) for " +
                    file_count_text(path_count) +
                    " instead of one per file, so the digests cannot be checked (the loader "
                    "must hand over each weight file as its own buffer)");
  }
  std::vector<Job> jobs;
  jobs.reserve(recorded);
  size_t first = 0;
  for (size_t g = 0; g < manifest.size(); ++g) {
    if (manifest[g].sha256) {
      for (size_t i = 0; i < manifest[g].paths.size(); ++i) {
        // Checked by the loader against this very digest: not hashed twice.
        auto it = checked.find(first + i);
        if (it != checked.end() && it->second == (*manifest[g].sha256)[i]) continue;
        jobs.push_back({g, i, first + i, {}});
      }
    }
    first += manifest[g].paths.size();
  }
  hash_all(jobs, data);
  for (const Job& job : jobs) {
    if (job.actual == (*manifest[job.group].sha256)[job.file]) continue;
    throw weight_digest_mismatch(source, manifest, job.group, job.file, data[job.buffer],
                                 job.actual);
  }
  return recorded;
}

}  // namespace stowage
