// kitprobe:// — a key-value model store over a process-wide map, written the
// way a third party writes a Redis or SQL plugin with the blob-store
// adapter, plus the fault probes the kit's tests use.
//
// USAGE
//   kitprobe://<folder>[/model.json]   keys under <folder>/
//   Options: "shard_size" (bytes per weight file), "throw" ("bad_alloc",
//   "runtime", "system", "retryable", "int": load throws that), "convert"
//   (load asks the host's weight-URL converter for this path and puts the
//   answer in userDefinedMetadata.converted),
//   "nested": {"depth": n} (a nested object, to test strict options),
//   "race": {"after": "list"|"model_json", "to": folder, "from": folder}
//   (once, right after the store lists or hands out <to>/model.json, the
//   model at <to> is replaced by a copy of the one at <from>, or removed
//   when "from" is empty: a save or remove racing a listing).
//   save answers with what its transaction did:
//   {"put":[keys in order],"removed":[keys]}.
#include <map>
#include <mutex>
#include <system_error>

#include "stowage/blob_store.hpp"

namespace {

using namespace stowage;
using namespace stowage::plugin;

struct Blob {
  Buffer bytes;
  std::chrono::system_clock::time_point written;
};

// The "server": one map for the process.
struct Server {
  std::mutex mu;
  std::map<std::string, Blob> blobs;
  std::string last_commit;  // {"put":[keys in order],"removed":[keys]} of the last transaction
};
Server& server() {
  static Server* s = new Server;
  return *s;
}

// What "race" does, once.
struct Race {
  std::string after;  // "list", "model_json" or "" (no race)
  std::string to;
  std::string from;
  bool done = false;

  void run_if(std::string_view event, std::string_view key = "") {
    if (done || after != event) return;
    if (event == "model_json" && key != to + "/model.json") return;
    done = true;
    std::lock_guard<std::mutex> lock(server().mu);
    auto& blobs = server().blobs;
    for (auto it = blobs.lower_bound(to + "/");
         it != blobs.end() && it->first.starts_with(to + "/");)
      it = blobs.erase(it);
    if (from.empty()) return;
    std::map<std::string, Blob> copies;
    for (auto it = blobs.lower_bound(from + "/");
         it != blobs.end() && it->first.starts_with(from + "/"); ++it) {
      copies[to + it->first.substr(from.size())] = {it->second.bytes,
                                                    std::chrono::system_clock::now()};
    }
    blobs.merge(copies);
  }
};

class KvStore final : public BlobStore {
 public:
  explicit KvStore(Race race) : race_(std::move(race)) {}

  // Puts are staged and applied under one lock: MULTI/EXEC.
  class Txn final : public Transaction {
   public:
    void put(const std::string& key, const std::vector<Buffer>& pieces, Call&) override {
      if (pieces.size() == 1) {
        staged_.emplace_back(key, pieces.front());  // keeps the caller's bytes: no copy
        return;
      }
      std::string joined;
      for (const Buffer& p : pieces) joined += p.view();
      staged_.emplace_back(key, Buffer::from_string(std::move(joined)));
    }
    void remove(const std::vector<std::string>& keys, Call&) override {
      removed_.insert(removed_.end(), keys.begin(), keys.end());
    }
    void commit(Call&) override {
      std::lock_guard<std::mutex> lock(server().mu);
      std::string put, removed;
      for (auto& [key, bytes] : staged_) {
        server().blobs[key] = Blob{bytes, std::chrono::system_clock::now()};
        put += (put.empty() ? "" : ",") + json::quote(key);
      }
      for (const std::string& key : removed_) {
        server().blobs.erase(key);
        removed += (removed.empty() ? "" : ",") + json::quote(key);
      }
      server().last_commit = R"({"put":[)" + put + R"(],"removed":[)" + removed + "]}";
      abort();
    }
    void abort() noexcept override {
      staged_.clear();
      removed_.clear();
    }

   private:
    std::vector<std::pair<std::string, Buffer>> staged_;
    std::vector<std::string> removed_;
  };

  std::optional<Buffer> get(const std::string& key, Call&) override {
    std::optional<Buffer> out;
    {
      std::lock_guard<std::mutex> lock(server().mu);
      auto it = server().blobs.find(key);
      if (it != server().blobs.end()) out = it->second.bytes;
    }
    race_.run_if("model_json", key);
    return out;
  }
  std::optional<BlobInfo> stat(const std::string& key, Call&) override {
    std::lock_guard<std::mutex> lock(server().mu);
    auto it = server().blobs.find(key);
    if (it == server().blobs.end()) return std::nullopt;
    return BlobInfo{key, it->second.bytes.size(), it->second.written};
  }
  std::unique_ptr<Transaction> begin(Call&) override { return std::make_unique<Txn>(); }
  std::vector<BlobInfo> list(const std::string& prefix, Call&) override {
    std::vector<BlobInfo> out;
    {
      std::lock_guard<std::mutex> lock(server().mu);
      for (auto it = server().blobs.lower_bound(prefix);
           it != server().blobs.end() && it->first.starts_with(prefix); ++it) {
        out.push_back({it->first, it->second.bytes.size(), it->second.written});
      }
    }
    race_.run_if("list");
    return out;
  }
  void remove(const std::vector<std::string>& keys, Call&) override {
    std::lock_guard<std::mutex> lock(server().mu);
    for (const std::string& key : keys) server().blobs.erase(key);
  }
  std::string url_of(const std::string& key) const override { return "kitprobe://" + key; }

 private:
  Race race_;
};

Race race_of(Options& options) {
  Options race = options.get_object("race");
  return Race{race.get_string("after"), race.get_string("to"), race.get_string("from")};
}

std::string path_in(std::string_view url) { return std::string(url.substr(url.find("://") + 3)); }

class KvHandler final : public BlobStoreHandler {
 public:
  KvHandler(std::string_view url, Options& options)
      : BlobStoreHandler(url, options, std::make_unique<KvStore>(race_of(options)),
                         locate_model(path_in(url), url)),
        fault_(options.get_string("throw")),
        convert_(options.get_string("convert")) {
    options.get_object("nested").get_uint64("depth", 0);
  }

  ModelArtifacts load(Call& call) override {
    if (fault_ == "bad_alloc") throw std::bad_alloc();
    if (fault_ == "runtime") throw std::runtime_error("probe: runtime");
    if (fault_ == "system") throw std::system_error(EACCES, std::generic_category(), "probe");
    if (fault_ == "retryable") throw Error(ErrorCode::kUnavailable, "probe: busy", true);
    if (fault_ == "int") throw 42;
    ModelArtifacts artifacts = BlobStoreHandler::load(call);
    if (!convert_.empty()) {
      std::optional<std::string> url = call.convert_weight_url(convert_);
      artifacts.user_defined_metadata =
          std::string(R"({"converted":)") + (url ? json::quote(*url) : "null") + "}";
    }
    return artifacts;
  }

  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    BlobStoreHandler::save(artifacts, call);
    std::lock_guard<std::mutex> lock(server().mu);
    return server().last_commit;
  }

 private:
  std::string fault_;
  std::string convert_;
};

}  // namespace

STOWAGE_PLUGIN(KvHandler, "kitprobe", "1.0.0", kBlobStoreCaps, "kitprobe");
