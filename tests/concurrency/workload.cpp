// The concurrent workload (see workload.hpp).
#include "workload.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "plugin_test_util.hpp"
#include "stowage/error.hpp"

namespace stowage::concurrency {
namespace {

// Version ids are handed out per run; a version's weights have a size of
// its own (kBaseFloats + id floats), so two versions never have equal sizes
// and a model.json of one with the weights of another fails the size check
// instead of passing unnoticed.
constexpr int kBaseFloats = 8;
constexpr int kMaxVersions = 1 << 14;

float value_of(int id, size_t k) {
  return static_cast<float>(id) + 0.5f * static_cast<float>(k % 8);
}

ModelArtifacts version_model(int id) {
  std::vector<float> values(static_cast<size_t>(kBaseFloats + id));
  for (size_t k = 0; k < values.size(); ++k) values[k] = value_of(id, k);
  // Cut in three buffers, so stores that keep buffers apart see several.
  const uint64_t bytes = values.size() * 4;
  ModelArtifacts a = testing::float_model(values, {bytes / 3, 2 * bytes / 3});
  a.model_topology = R"({"class_name":"Sequential","config":{"name":"v)" + std::to_string(id) +
                     R"(","layers":[]}})";
  a.user_defined_metadata = R"({"version":)" + std::to_string(id) + "}";
  return a;
}

uint64_t weight_bytes_of(int id) { return static_cast<uint64_t>(kBaseFloats + id) * 4; }

// The version a weight byte count belongs to, or -1.
int version_of_bytes(uint64_t bytes) {
  if (bytes % 4 != 0 || bytes / 4 < kBaseFloats) return -1;
  return static_cast<int>(bytes / 4 - kBaseFloats);
}

// The shared state of one run: which versions were started, and failures.
class Run {
 public:
  explicit Run(const Target& target) : target_(target), started_(kMaxVersions) {}

  int next_version() {
    const int id = next_.fetch_add(1);
    if (id >= kMaxVersions) throw std::runtime_error("too many versions for one run");
    started_[static_cast<size_t>(id)].store(true);
    return id;
  }
  bool was_started(int id) const {
    return id >= 0 && id < kMaxVersions && started_[static_cast<size_t>(id)].load();
  }

  void fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (outcome_.failures.size() < 50) outcome_.failures.push_back(target_.scheme + ": " + what);
  }

  // The version a loaded model is, after checking that all of it is that
  // one version; -1 (and a failure) when it is not.
  int check_model(const std::string& name, const ModelArtifacts& m) {
    rapidjson::Document d;
    d.Parse(m.model_topology.value_or("").c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("config") || !d["config"].IsObject() ||
        !d["config"].HasMember("name") || !d["config"]["name"].IsString()) {
      fail(name + ": the loaded modelTopology is not one that was saved: " +
           m.model_topology.value_or("<none>"));
      return -1;
    }
    const std::string tag = d["config"]["name"].GetString();
    const int id = tag.size() > 1 && tag[0] == 'v' ? std::atoi(tag.c_str() + 1) : -1;
    if (!was_started(id)) {
      fail(name + ": loaded version '" + tag + "', which no thread saved");
      return -1;
    }
    const std::string bytes = testing::weight_bytes(m);
    if (bytes.size() != weight_bytes_of(id)) {
      fail(name + ": model.json of version " + std::to_string(id) + " came with " +
           std::to_string(bytes.size()) + " weight bytes (version " +
           std::to_string(version_of_bytes(bytes.size())) + "'s size): a mix of two saves");
      return -1;
    }
    if (!m.weight_specs || m.weight_specs->size() != 1 ||
        (*m.weight_specs)[0].shape != std::vector<int64_t>{kBaseFloats + id}) {
      fail(name + ": the weight specs of version " + std::to_string(id) + " are not as saved");
      return -1;
    }
    for (size_t k = 0; k * 4 < bytes.size(); ++k) {
      float f;
      std::memcpy(&f, bytes.data() + k * 4, 4);
      if (f != value_of(id, k)) {
        fail(name + ": weight " + std::to_string(k) + " of version " + std::to_string(id) +
             " holds " + std::to_string(f) + " (version " + std::to_string(static_cast<int>(f)) +
             "'s bytes?): a mix of two saves");
        return -1;
      }
    }
    return id;
  }

  // Saves a new version of `name`; its id, or -1 after a failure.
  int save(const std::string& name) {
    const int id = next_version();
    try {
      target_.save(name, version_model(id));
      count(&Outcome::saves);
      return id;
    } catch (const std::exception& e) {
      fail(name + ": save of version " + std::to_string(id) + " failed: " + e.what());
      return -1;
    }
  }

  enum class Loaded { kModel, kNotFound, kFailed };

  // Loads `name`; `id` receives the version found. A missing model is
  // kNotFound (a failure unless allowed). While saves of the same name run,
  // a straddled load is counted when the target says it may happen.
  Loaded load(const std::string& name, bool missing_allowed, bool saves_racing, int* id) {
    ModelArtifacts m;
    try {
      m = target_.load(name);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound && missing_allowed) {
        count(&Outcome::not_found);
        return Loaded::kNotFound;
      }
      if (e.code() == ErrorCode::kDataLoss && saves_racing && target_.loads_may_straddle_saves) {
        count(&Outcome::straddled);
        return Loaded::kFailed;
      }
      fail(name + ": load failed: " + e.what());
      return Loaded::kFailed;
    } catch (const std::exception& e) {
      fail(name + ": load failed: " + e.what());
      return Loaded::kFailed;
    }
    *id = check_model(name, m);
    if (*id < 0) return Loaded::kFailed;
    count(&Outcome::loads);
    return Loaded::kModel;
  }

  // Lists; every entry named `name` must have a size some version has.
  std::vector<Listed> list(const std::string& name) {
    try {
      std::vector<Listed> all = target_.list();
      count(&Outcome::lists);
      for (const Listed& l : all) {
        if (l.name != name) continue;
        if (!l.weight_data_bytes || !was_started(version_of_bytes(*l.weight_data_bytes))) {
          fail(name + ": listed with " +
               (l.weight_data_bytes ? std::to_string(*l.weight_data_bytes) : "no") +
               " weight bytes, the size of no saved version");
        }
      }
      return all;
    } catch (const std::exception& e) {
      fail("list failed: " + std::string(e.what()));
      return {};
    }
  }

  // Removes `name`; false when it was not there (a failure unless allowed).
  bool remove(const std::string& name, bool missing_allowed) {
    try {
      target_.remove(name);
      count(&Outcome::removes);
      return true;
    } catch (const Error& e) {
      if (!(e.code() == ErrorCode::kNotFound && missing_allowed)) {
        fail(name + ": remove failed: " + e.what());
      }
    } catch (const std::exception& e) {
      fail(name + ": remove failed: " + e.what());
    }
    return false;
  }

  Outcome outcome() {
    std::lock_guard<std::mutex> lock(mu_);
    return outcome_;
  }

 private:
  void count(uint64_t Outcome::*field) {
    std::lock_guard<std::mutex> lock(mu_);
    ++(outcome_.*field);
  }

  const Target& target_;
  std::atomic<int> next_{0};
  std::vector<std::atomic<bool>> started_;
  std::mutex mu_;
  Outcome outcome_;
};

bool listed(const std::vector<Listed>& all, const std::string& name) {
  return std::any_of(all.begin(), all.end(), [&](const Listed& l) { return l.name == name; });
}

// Runs body(thread) on `threads` threads released together.
void on_threads(int threads, const std::function<void(int)>& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      body(t);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true);
  for (std::thread& th : pool) th.join();
}

}  // namespace

std::string Outcome::summary() const {
  std::ostringstream out;
  out << saves << " saves, " << loads << " checked loads, " << not_found << " loads not found, "
      << straddled << " straddled loads refused, " << lists << " lists, " << removes << " removes, "
      << failures.size() << " failures";
  return out.str();
}

Outcome run_distinct(const Target& target, int threads, int iterations) {
  Run run(target);
  on_threads(threads, [&](int t) {
    const std::string name = "distinct-" + std::to_string(t);
    for (int i = 0; i < iterations; ++i) {
      const int saved = run.save(name);
      if (saved < 0) return;
      int got = -1;
      if (run.load(name, false, false, &got) != Run::Loaded::kModel) return;
      if (got != saved) {
        run.fail(name + ": saved version " + std::to_string(saved) + ", loaded " +
                 std::to_string(got) + " (another thread's model?)");
        return;
      }
      if (i % 4 == 3 && !listed(run.list(name), name)) {
        run.fail(name + ": missing from the listing after its save");
      }
    }
    if (!run.remove(name, false)) return;
    int got = -1;
    if (run.load(name, true, false, &got) != Run::Loaded::kNotFound) {
      run.fail(name + ": still loads after its remove");
    }
    run.remove(name, true);
  });
  // Every thread's model is gone, and nothing else was left behind.
  for (const Listed& l : run.list("")) {
    if (l.name.rfind("distinct-", 0) == 0) run.fail(l.name + ": listed after its remove");
  }
  return run.outcome();
}

Outcome run_shared(const Target& target, int threads, int iterations) {
  Run run(target);
  const std::string name = "shared";
  if (run.save(name) < 0) return run.outcome();

  // Saves and loads only: the model always exists, so every load must
  // return a whole version.
  on_threads(threads, [&](int t) {
    for (int i = 0; i < iterations; ++i) {
      if ((i + t) % 2 == 0) {
        run.save(name);
      } else {
        int got = -1;
        run.load(name, false, true, &got);
      }
      if ((i + t) % 5 == 0) run.list(name);
    }
  });

  // Saves, loads, lists and removes interleaved.
  on_threads(threads, [&](int t) {
    for (int i = 0; i < iterations; ++i) {
      int got = -1;
      switch ((i + t) % 4) {
        case 0:
          run.save(name);
          break;
        case 1:
          run.load(name, true, true, &got);
          break;
        case 2:
          run.list(name);
          break;
        default:
          run.remove(name, true);
          break;
      }
    }
  });

  // Quiet again: the last save wins completely, the remove leaves nothing.
  const int last = run.save(name);
  int got = -1;
  if (last >= 0 && run.load(name, false, false, &got) == Run::Loaded::kModel && got != last) {
    run.fail("shared: after the last save (version " + std::to_string(last) + ") loaded version " +
             std::to_string(got));
  }
  if (last >= 0 && !listed(run.list(name), name)) run.fail("shared: missing from the listing");
  run.remove(name, false);
  if (run.load(name, true, false, &got) != Run::Loaded::kNotFound) {
    run.fail("shared: still loads after the last remove");
  }
  if (listed(run.list(""), name)) run.fail("shared: listed after the last remove");
  return run.outcome();
}

}  // namespace stowage::concurrency
