// The blob-store adapter: implement a few operations over keys (get, a
// write transaction, list, remove) and get a complete Handler that stores
// models in TF.js's file layout:
//
//   <folder>/model.json    written last, as tfjs-node writes it
//   <folder>/weights.bin   the weight bytes (default), or
//   <folder>/group1-shard1ofN.bin ...   with the option "shard_size" (bytes)
//
// Save streams the weight Buffers into the weight files without joining
// them, puts model.json last, drops the weight files of the model it
// replaces that it no longer uses, and publishes all that in one
// transaction. BlobLayout::save_from does the same from a streaming source,
// writing each weight file as its bytes arrive (Transaction::open).
// Integrity (docs/integrity.md): with the option "integrity": "sha256" a
// save records each weight file's SHA-256 in its manifest group
// ("sha256"), computed from each piece as it goes to the Transaction (no
// second pass over the bytes). A save of weights held in memory hashes on a
// second thread while the Transaction writes (that thread only reads the
// buffers, never calls the store; ShardWriter::put_all). The default is the
// plugin's: file:// says
// "sha256"; a BlobStoreHandler keeps "none" unless its plugin passes
// another default. With "shard_names": "sha256" (content-addressed; implies
// digests) each weight file is named "<16 hex of its digest>.bin" (longer
// on a clash), and a save keeps a file the folder already holds under that
// name when its bytes have that digest (read and hashed, not trusted by
// name) instead of writing it again; a file of that name with other bytes
// makes the name longer. Such a save needs a file's digest before its name,
// so it holds one weight file's buffers at a time (shard_size bounds it).
// Load reads model.json (parse_model_json refuses traversal paths), then
// every weight file of its manifest, one Buffer per path, labelled with the
// file's name. List finds model.json keys; remove deletes model.json and
// exactly the files its manifest names (of content-addressed names, those
// no other model file in the folder names too).
//
// A Redis plugin, for instance, is a BlobStore over SET/GET/SCAN/DEL with
// MULTI/EXEC as the transaction, plus:
//
//   class RedisHandler : public stowage::plugin::BlobStoreHandler {
//    public:
//     RedisHandler(std::string_view url, stowage::plugin::Options& options)
//         : BlobStoreHandler(url, options, std::make_unique<RedisStore>(url, options),
//                            stowage::plugin::locate_model(path_of(url), url)) {}
//   };
//   STOWAGE_PLUGIN(RedisHandler, "redis", "1.0.0", stowage::plugin::kBlobStoreCaps, "redis");
//
// Thread-safety: BlobStoreHandler adds no state of its own; it is as
// thread-safe as the BlobStore it runs on. Ownership: the handler owns its
// store.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "stowage/digest.hpp"
#include "stowage/plugin.hpp"
#include "stowage/sharding.hpp"
#include "stowage/weights.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::plugin {

// load, save, list and remove.
inline constexpr uint64_t kBlobStoreCaps =
    STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE;

struct BlobInfo {
  std::string key;
  uint64_t size = 0;
  // When the blob was last written; stores that keep no time leave it empty.
  std::optional<std::chrono::system_clock::time_point> modified;
};

// A flat namespace of keys ("models/mnist/model.json") holding immutable
// byte strings. Keys use '/' between folders and never start with '/'.
// Thread-safety: every member may be called from several threads at once.
class BlobStore {
 public:
  // The writes of one save. Used by one thread at a time.
  class Transaction {
   public:
    virtual ~Transaction() = default;
    // Writes `key` with the concatenation of `pieces` (possibly slices of
    // the caller's buffers; the store may keep them). May report bytes as
    // they go out with call.advance() and stop early with call.check().
    virtual void put(const std::string& key, const std::vector<Buffer>& pieces, Call& call) = 0;
    // Deletes keys when the transaction commits: the weight files of the
    // model being replaced that the new one does not use. A store whose
    // commit replaces the whole folder has nothing to do here.
    virtual void remove(const std::vector<std::string>& keys, Call& call) = 0;
    // Publishes every put (and remove) at once. A store without transactions writes in
    // put() and does nothing here: the adapter puts model.json last, so a
    // reader never finds a model.json whose weight files are missing.
    virtual void commit(Call& call) = 0;
    // Discards everything put so far; runs when commit() is not reached or
    // fails. Never throws.
    virtual void abort() noexcept = 0;
    // A content-addressed save keeps `key` as the store holds it now (the
    // adapter read it and checked its digest) instead of putting it again.
    // Returns false when the store cannot keep it; the adapter then puts it.
    // By default nothing is kept: a store whose commit replaces the whole
    // folder must carry the file over; one that writes in place may just
    // return true.
    virtual bool keep(const std::string& key, Call& call) {
      (void)key;
      (void)call;
      return false;
    }

    // One key written piece by piece (a streaming save: the pieces come
    // while the load behind them runs). write() may keep a piece only until
    // it returns, so the caller can release it; close() ends the key.
    class Writer {
     public:
      virtual ~Writer() = default;
      virtual void write(const Buffer& piece, Call& call) = 0;
      virtual void close(Call& call) = 0;
    };
    // Starts writing `key`, which will be exactly `size` bytes. By default
    // the pieces are kept and handed to put() at close(): a store that can
    // write a key in parts overrides this so it holds no whole key.
    virtual std::unique_ptr<Writer> open(const std::string& key, uint64_t size, Call& call) {
      (void)size;
      (void)call;
      struct Collect final : Writer {
        Collect(Transaction& t, std::string k) : txn(t), key(std::move(k)) {}
        void write(const Buffer& piece, Call&) override { pieces.push_back(piece); }
        void close(Call& c) override { txn.put(key, pieces, c); }
        Transaction& txn;
        std::string key;
        std::vector<Buffer> pieces;
      };
      return std::make_unique<Collect>(*this, key);
    }
  };

  // The reads of one load, list or remove. A store that can pin one
  // version of its data for a sequence of reads (a folder handle, a
  // snapshot, a generation number) does it here, so a concurrent save
  // cannot hand a load model.json of one version and weights of another.
  class Reader {
   public:
    virtual ~Reader() = default;
    virtual std::optional<Buffer> get(const std::string& key, Call& call) = 0;
    // True when the pinned version has been replaced since the reader was
    // made: a blob missing from a stale reader makes the load start again.
    virtual bool stale() { return false; }
  };

  virtual ~BlobStore() = default;

  // The blob's bytes, or nullopt when the key does not exist. A Buffer may
  // carry a label (a file path); the adapter labels the others with name_of.
  virtual std::optional<Buffer> get(const std::string& key, Call& call) = 0;
  virtual std::unique_ptr<Transaction> begin(Call& call) = 0;
  // Every blob whose key starts with prefix, at any depth; empty when none.
  virtual std::vector<BlobInfo> list(const std::string& prefix, Call& call) = 0;
  // Deletes keys in the order given (model.json comes first); a key that is
  // already gone is not an error.
  virtual void remove(const std::vector<std::string>& keys, Call& call) = 0;
  // The URL that names `key` (a listed model is reported by the URL of its
  // model.json).
  virtual std::string url_of(const std::string& key) const = 0;

  // Optional overrides.
  // How error messages and buffer labels name `key`; the URL by default.
  virtual std::string name_of(const std::string& key) const { return url_of(key); }
  // Size and time of one blob; by default through get().
  virtual std::optional<BlobInfo> stat(const std::string& key, Call& call) {
    std::optional<Buffer> blob = get(key, call);
    if (!blob) return std::nullopt;
    return BlobInfo{key, blob->size(), std::nullopt};
  }
  // By default the reads go straight to get().
  virtual std::unique_ptr<Reader> reader(Call& call) {
    (void)call;
    struct Direct : Reader {
      explicit Direct(BlobStore& s) : store(s) {}
      std::optional<Buffer> get(const std::string& key, Call& c) override {
        return store.get(key, c);
      }
      BlobStore& store;
    };
    return std::make_unique<Direct>(*this);
  }
};

// Where one handler's model lives in a store.
struct BlobLocation {
  std::string folder;                     // key prefix of the model: "" or ending in '/'
  std::string model_name = "model.json";  // the model file inside the folder
  bool names_model = false;               // the URL named the model file itself
};

// How a save of the blob-store layout names and records its weight files.
struct BlobSaveOptions {
  Integrity integrity = Integrity::kNone;
  ShardNames shard_names = ShardNames::kTfjs;
};

// Reads "integrity" (default_integrity when absent) and "shard_names".
// Content-addressed names imply digests; an explicit "integrity": "none"
// with them is INVALID_ARGUMENT naming both options and the URL.
inline BlobSaveOptions read_blob_save_options(Options& options, Integrity default_integrity) {
  BlobSaveOptions out;
  out.integrity = read_integrity(options, default_integrity);
  out.shard_names = read_shard_names(options);
  if (out.shard_names == ShardNames::kSha256) {
    if (out.integrity == Integrity::kNone && options.has("integrity")) {
      throw Error(ErrorCode::kInvalidArgument,
                  "Options \"integrity\": \"none\" and \"shard_names\": \"sha256\" for " +
                      options.url() +
                      " contradict each other: content-addressed names are the files' digests");
    }
    out.integrity = Integrity::kSha256;
  }
  return out;
}

// Reads the path part of a URL ("a/b", "a/b/", "a/b/model.json"; empty
// segments are dropped). A last segment ending in ".json" names the model
// file; anything else is the folder. Throws Error(kInvalidArgument) naming
// url for "." and ".." segments.
inline BlobLocation locate_model(std::string_view path, std::string_view url) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view s = path.substr(start, end - start);
    if (s == "." || s == "..") {
      throw Error(ErrorCode::kInvalidArgument,
                  "The URL " + std::string(url) + " has a \"" + std::string(s) +
                      "\" segment; model paths must not leave their root");
    }
    if (!s.empty()) segments.push_back(s);
    start = end + 1;
  }
  BlobLocation location;
  if (!segments.empty() && segments.back().size() > 5 && segments.back().ends_with(".json")) {
    location.model_name = std::string(segments.back());
    location.names_model = true;
    segments.pop_back();
  }
  for (std::string_view s : segments) {
    location.folder += s;
    location.folder += '/';
  }
  return location;
}

// The key of a weight file named in a manifest, relative to the model's
// folder. Throws Error(kInvalidArgument) naming source for a path that is
// empty, absolute or has a ".." segment.
inline std::string weight_key(const std::string& folder, std::string_view path,
                              std::string_view source) {
  std::string_view p = path;
  while (p.starts_with("./")) p.remove_prefix(2);
  bool bad = p.empty() || p.front() == '/' || p.find('\0') != std::string_view::npos;
  for (size_t start = 0; !bad && start <= p.size();) {
    size_t end = std::min(p.find('/', start), p.size());
    bad = p.substr(start, end - start) == "..";
    start = end + 1;
  }
  if (bad) {
    throw Error(ErrorCode::kInvalidArgument, std::string(source) + ": the weight path \"" +
                                                 std::string(path) +
                                                 "\" is empty, absolute or leaves the model's "
                                                 "folder; refused");
  }
  return folder + std::string(p);
}

// The TF.js file layout over a store, one operation at a time.
// BlobStoreHandler runs it; a plugin whose location depends on what exists
// at call time (file://) builds one per call.
class BlobLayout {
 public:
  // A load that finds a blob missing from a stale reader starts again, this
  // many times in all; then it fails with UNAVAILABLE (retryable).
  static constexpr int kLoadAttempts = 4;

  BlobLayout(BlobStore& store, BlobLocation location, uint64_t shard_size, std::string url,
             BlobSaveOptions save_options = {})
      : store_(store),
        location_(std::move(location)),
        shard_size_(shard_size),
        url_(std::move(url)),
        save_options_(save_options) {}

  std::string model_key() const { return location_.folder + location_.model_name; }

  // NOT_FOUND "Path <name> does not exist: loading failed" without
  // model.json; DATA_LOSS "Weight file <name> does not exist: loading
  // failed" for a missing weight file.
  ModelArtifacts load(Call& call) const {
    const std::string key = model_key();
    for (int attempt = 1;; ++attempt) {
      call.check();
      call.progress(0, 0);
      bool last = attempt == kLoadAttempts;
      std::unique_ptr<BlobStore::Reader> reader = store_.reader(call);
      std::optional<Buffer> text = reader->get(key, call);
      if (!text) {
        if (reader->stale()) {
          if (!last) continue;
          throw changing();
        }
        throw Error(ErrorCode::kNotFound,
                    "Path " + store_.name_of(key) + " does not exist: loading failed");
      }
      ModelArtifacts artifacts = parse_model_json(text->view(), store_.name_of(key));
      if (!artifacts.weights_manifest) return artifacts;
      WeightData data;
      bool restart = false;
      for (const WeightGroup& group : *artifacts.weights_manifest) {
        for (const std::string& path : group.paths) {
          call.check();
          std::string shard = weight_key(location_.folder, path, store_.name_of(key));
          std::optional<Buffer> bytes = reader->get(shard, call);
          if (!bytes) {
            if (reader->stale()) {
              if (last) throw changing();
              restart = true;
              break;
            }
            throw Error(ErrorCode::kDataLoss,
                        "Weight file " + store_.name_of(shard) + " does not exist: loading failed");
          }
          if (bytes->label().empty()) bytes->set_label(store_.name_of(shard));
          call.set_total(call.total() + bytes->size());
          call.advance(bytes->size());
          data.push_back(std::move(*bytes));
        }
        if (restart) break;
      }
      if (restart) continue;
      artifacts.weight_data = std::move(data);
      return artifacts;
    }
  }

  // Writes the weight files, then model.json, in one transaction.
  // INVALID_ARGUMENT when the weight bytes do not match the weight specs.
  void save(const ModelArtifacts& artifacts, Call& call) const {
    call.check();
    check_weights(artifacts);
    static const WeightData kNone;
    const WeightData& data = artifacts.weight_data ? *artifacts.weight_data : kNone;
    transact(artifacts, total_size(data), call, [&](ShardWriter& out) {
      Cursor cursor(data);
      if (out.hashing() && !out.addressed()) {
        std::vector<std::vector<Buffer>> files;
        for (const ShardPlan& p : out.plan()) files.push_back(cursor.take(p.size));
        out.put_all(files);
        return;
      }
      for (size_t i = 0; i < out.plan().size(); ++i) {
        const uint64_t size = out.plan()[i].size;
        out.put(i, cursor.take(size));
        call.check();
      }
    });
  }

  // save() from a WeightSource in either form. In the pull form each
  // shard is written as its bytes arrive and every buffer is released once
  // written (content-addressed: once its shard is named and written);
  // nothing is published until the source said it ended (the host
  // fails the pull instead when the load behind it failed), and a failure
  // or cancellation before the commit aborts the transaction.
  void save_from(const ModelArtifacts& meta, WeightSource& weights, Call& call) const {
    if (!weights.streaming()) {
      ModelArtifacts whole = meta;
      if (weights.has_weight_data()) whole.weight_data = weights.take_all();
      save(whole, call);
      return;
    }
    call.check();
    const uint64_t total = weights.total_bytes();
    check_total(meta, total);
    transact(meta, total, call, [&](ShardWriter& out) {
      std::optional<Buffer> pending;  // the part of a pulled buffer not yet written
      for (size_t i = 0; i < out.plan().size(); ++i) {
        const uint64_t size = out.plan()[i].size;
        out.open(i);
        for (uint64_t left = size; left > 0;) {
          if (!pending || pending->empty()) {
            pending = weights.next();
            if (!pending) throw short_source(total);
            continue;
          }
          const uint64_t k = std::min(left, pending->size());
          const bool whole = k == pending->size();
          out.write(whole ? *pending : pending->slice(0, k));
          pending =
              whole ? std::nullopt : std::optional<Buffer>(pending->slice(k, pending->size() - k));
          left -= k;
          call.check();
        }
        out.close();
      }
      // The end of the source is what says the load behind it succeeded.
      while (pending || (pending = weights.next())) {
        if (!pending->empty()) throw short_source(total);
        pending.reset();
      }
    });
  }

  // Every model at or under the location (only the named one when the
  // location names a model file), ordered by URL. A model.json that cannot
  // be read is skipped with a warning in the host's log.
  std::vector<ListedModel> list(Call& call) const {
    std::map<std::string, BlobInfo> blobs;
    std::vector<std::string> models;
    if (location_.names_model) {
      std::optional<BlobInfo> info = store_.stat(model_key(), call);
      if (!info) return {};
      models.push_back(info->key);
      blobs[info->key] = *info;
    } else {
      for (BlobInfo& b : store_.list(location_.folder, call)) {
        std::string_view name = b.key;
        name = name.substr(name.rfind('/') == std::string_view::npos ? 0 : name.rfind('/') + 1);
        if (name == "model.json") models.push_back(b.key);
        blobs[b.key] = std::move(b);
      }
    }
    std::unique_ptr<BlobStore::Reader> reader = store_.reader(call);
    std::vector<ListedModel> out;
    for (const std::string& key : models) {
      call.check();
      try {
        std::optional<ListedModel> m = describe_listed(*reader, key, blobs, call);
        if (m) out.push_back(std::move(*m));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kInvalidArgument && e.code() != ErrorCode::kDataLoss) throw;
        log(2, "list " + url_ + ": skipping " + store_.name_of(key) + ": " + e.what());
      }
    }
    std::sort(out.begin(), out.end(),
              [](const ListedModel& a, const ListedModel& b) { return a.url < b.url; });
    return out;
  }

  // Deletes model.json first, then the weight files its manifest names
  // (content-addressed ones only when no other model file in the folder
  // names them). NOT_FOUND without model.json.
  ModelArtifactsInfo remove(Call& call) const {
    call.check();
    std::unique_ptr<BlobStore::Reader> reader = store_.reader(call);
    const std::string key = model_key();
    std::map<std::string, BlobInfo> blobs;
    std::vector<std::string> keys;
    std::optional<ListedModel> m = describe(*reader, key, blobs, call, &keys);
    if (!m) {
      throw Error(ErrorCode::kNotFound,
                  "No model at " + url_ + ": " + store_.name_of(key) + " does not exist");
    }
    call.check();
    drop_shared(keys, *reader, call);
    store_.remove(keys, call);
    return m->info;
  }

 private:
  // Writes the weight files of one save: hashes each piece as it goes to
  // the transaction (integrity "sha256"), and for content-addressed names
  // holds each file's pieces until its digest names it, then puts it, keeps
  // the store's copy, or does nothing for bytes this save already wrote.
  class ShardWriter {
   public:
    ShardWriter(const BlobLayout& layout, BlobStore::Transaction& txn, std::vector<ShardPlan> plan,
                Call& call)
        : layout_(layout), txn_(txn), plan_(std::move(plan)), call_(call) {}

    const std::vector<ShardPlan>& plan() const noexcept { return plan_; }
    bool hashing() const noexcept {
      return layout_.save_options_.integrity == Integrity::kSha256 || addressed();
    }
    bool addressed() const noexcept {
      return layout_.save_options_.shard_names == ShardNames::kSha256;
    }
    // One digest per file, in plan order; empty without integrity.
    const std::vector<std::string>& digests() const noexcept { return digests_; }

    // The whole file `i` at once.
    void put(size_t i, const std::vector<Buffer>& pieces) {
      for (const Buffer& piece : pieces) {
        if (hashing()) hash_.update(piece.bytes());
      }
      if (addressed()) {
        place(i, pieces);
        return;
      }
      BlobLayout::put(txn_, key(i), pieces, plan_[i].size, call_);
      if (hashing()) digests_.push_back(hash_.finish_hex());
    }

    // Every file of the plan, whole, with digests (not content-addressed:
    // names need no digest first). A second thread hashes the files from the
    // first on while this one writes them in order; once written, this one
    // hashes from the last back until the two meet. So the save takes about
    // (write + hash) / 2 on two idle cores, rather than write + hash, and
    // still reads each byte once per purpose.
    void put_all(const std::vector<std::vector<Buffer>>& files) {
      const size_t n = files.size();
      std::vector<std::string> digests(n);
      std::unique_ptr<std::atomic<bool>[]> claimed(new std::atomic<bool>[n]);
      for (size_t i = 0; i < n; ++i) claimed[i].store(false, std::memory_order_relaxed);
      auto hash_file = [&](size_t i) {
        Sha256 hash;
        for (const Buffer& piece : files[i]) hash.update(piece.bytes());
        digests[i] = hash.finish_hex();
      };
      std::atomic<bool> stop{false};
      std::future<void> helper;
      uint64_t total = 0;
      for (const ShardPlan& p : plan_) total += p.size;
      if (total >= kHelperBytes) {
        try {
          helper = std::async(std::launch::async, [&] {
            for (size_t i = 0; i < n && !stop.load(std::memory_order_relaxed); ++i) {
              if (!claimed[i].exchange(true)) hash_file(i);
            }
          });
        } catch (const std::system_error&) {
          // No thread to be had: this one hashes every file below.
        }
      }
      // Leaving early (a failed write, a cancellation) stops the helper; the
      // future, destroyed after this guard, waits for it before the files go.
      struct Stop {
        std::atomic<bool>& stop;
        ~Stop() { stop.store(true); }
      } stop_on_exit{stop};
      for (size_t i = 0; i < n; ++i) {
        BlobLayout::put(txn_, key(i), files[i], plan_[i].size, call_);
        call_.check();
      }
      for (size_t i = n; i-- > 0;) {
        if (!claimed[i].exchange(true)) hash_file(i);
      }
      if (helper.valid()) helper.get();
      digests_ = std::move(digests);
    }

    // File `i` piece by piece.
    void open(size_t i) {
      index_ = i;
      before_ = call_.done();
      if (!addressed()) out_ = txn_.open(key(i), plan_[i].size, call_);
    }
    void write(const Buffer& piece) {
      if (hashing()) hash_.update(piece.bytes());
      if (addressed()) {
        held_.push_back(piece);
      } else {
        out_->write(piece, call_);
      }
    }
    void close() {
      if (addressed()) {
        std::vector<Buffer> pieces = std::move(held_);
        held_.clear();
        place(index_, pieces);
        return;
      }
      out_->close(call_);
      out_.reset();
      const uint64_t reported = call_.done() - before_;
      if (reported < plan_[index_].size) call_.advance(plan_[index_].size - reported);
      if (hashing()) digests_.push_back(hash_.finish_hex());
    }

   private:
    // Below this, starting a thread costs more than sharing the hashing saves.
    static constexpr uint64_t kHelperBytes = 1ull << 20;

    std::string key(size_t i) const { return layout_.location_.folder + plan_[i].path; }

    // Names file `i` after its digest and stores it there.
    void place(size_t i, const std::vector<Buffer>& pieces) {
      std::string digest = hash_.finish_hex();
      std::string name =
          content_addressed_names({digest}, [&](const std::string& n, const std::string& d) {
            auto used = named_.find(n);
            if (used != named_.end()) return used->second != d;
            return stored_digest(n).value_or(d) != d;
          })[0];
      plan_[i].path = name;
      digests_.push_back(digest);
      const uint64_t size = plan_[i].size;
      if (!named_.emplace(name, digest).second) {
        call_.advance(size);  // the same bytes as an earlier file of this save
        return;
      }
      const std::string k = key(i);
      if (stored_digest(name) == digest && txn_.keep(k, call_)) {
        call_.advance(size);
        return;
      }
      BlobLayout::put(txn_, k, pieces, size, call_);
    }

    // The digest of the file `name` in the model's folder as the store
    // holds it now (read and hashed, whatever its name claims); nullopt when
    // there is none. Each name is read once per save.
    std::optional<std::string> stored_digest(const std::string& name) {
      auto it = stored_.find(name);
      if (it != stored_.end()) return it->second;
      if (!reader_) reader_ = layout_.store_.reader(call_);
      std::optional<std::string> digest;
      try {
        std::optional<Buffer> bytes = reader_->get(layout_.location_.folder + name, call_);
        if (bytes) digest = sha256_hex(bytes->bytes());
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kDataLoss) throw;
        digest = "unreadable";  // not a file of any digest: the name is taken
      }
      stored_.emplace(name, digest);
      return digest;
    }

    const BlobLayout& layout_;
    BlobStore::Transaction& txn_;
    std::vector<ShardPlan> plan_;
    Call& call_;
    Sha256 hash_;
    std::vector<std::string> digests_;
    std::map<std::string, std::string> named_;  // content-addressed name -> digest, this save
    std::map<std::string, std::optional<std::string>> stored_;  // stored_digest's reads
    std::unique_ptr<BlobStore::Reader> reader_;
    std::unique_ptr<BlobStore::Transaction::Writer> out_;
    std::vector<Buffer> held_;
    size_t index_ = 0;
    uint64_t before_ = 0;
  };

  // The frame of every save of `total` weight bytes: one transaction in
  // which write_shards(writer) writes the weight files, then model.json from
  // the JSON fields of `model` with the files' final names (and digests),
  // the removal of the replaced model's stale files and the commit. An
  // exception aborts it all.
  template <typename WriteShards>
  void transact(const ModelArtifacts& model, uint64_t total, Call& call,
                WriteShards&& write_shards) const {
    std::vector<ShardPlan> plan = plan_shards(total, shard_size_);
    // Progress counts model.json from the start (the weights reaching their
    // total must not read as the save's end): its size with the planned
    // names, or 16-digit digest names, and digests of the fixed length.
    const bool addressed = save_options_.shard_names == ShardNames::kSha256;
    const bool hashing = addressed || save_options_.integrity == Integrity::kSha256;
    const uint64_t json_estimate =
        model_json(
            model, plan, addressed ? std::string(16, '0') + ".bin" : std::string(),
            hashing ? std::optional<std::string>(std::string(kSha256HexSize, '0')) : std::nullopt)
            .size();
    call.progress(0, total + json_estimate);

    std::unique_ptr<BlobStore::Transaction> txn = store_.begin(call);
    struct Abort {
      BlobStore::Transaction* txn;
      ~Abort() {
        if (txn != nullptr) txn->abort();
      }
    } guard{txn.get()};
    ShardWriter writer(*this, *txn, std::move(plan), call);
    write_shards(writer);
    WeightGroup group;
    for (const ShardPlan& p : writer.plan()) group.paths.push_back(p.path);
    if (model.weight_specs) group.weights = *model.weight_specs;
    if (writer.hashing()) group.sha256 = writer.digests();
    std::string json = write_model_json(model, {group}, ModelJsonLayout::kTfjsNode);
    const uint64_t json_size = json.size();
    if (json_size != json_estimate) call.set_total(total + json_size);  // longer names
    std::vector<std::string> stale = stale_keys(writer.plan(), call);
    put(*txn, model_key(), {Buffer::from_string(std::move(json))}, json_size, call);
    if (!stale.empty()) txn->remove(stale, call);
    call.check();  // the last moment a cancellation leaves nothing behind
    txn->commit(call);
    guard.txn = nullptr;
    call.progress(total + json_size, total + json_size);
  }

  // model.json for `plan`: its paths, or each `name` when not empty, and
  // `digest` for every file when given.
  static std::string model_json(const ModelArtifacts& model, const std::vector<ShardPlan>& plan,
                                const std::string& name, const std::optional<std::string>& digest) {
    WeightGroup group;
    for (const ShardPlan& p : plan) group.paths.push_back(name.empty() ? p.path : name);
    if (model.weight_specs) group.weights = *model.weight_specs;
    if (digest) group.sha256 = std::vector<std::string>(plan.size(), *digest);
    return write_model_json(model, {group}, ModelJsonLayout::kTfjsNode);
  }

  // Hands out a shard's bytes as slices of the caller's buffers.
  class Cursor {
   public:
    explicit Cursor(const WeightData& data) : data_(data) {}
    std::vector<Buffer> take(uint64_t n) {
      std::vector<Buffer> pieces;
      while (n > 0 && index_ < data_.size()) {
        const Buffer& b = data_[index_];
        uint64_t k = std::min(b.size() - offset_, n);
        if (k > 0) pieces.push_back(k == b.size() ? b : b.slice(offset_, k));
        offset_ += k;
        n -= k;
        if (offset_ == b.size()) {
          ++index_;
          offset_ = 0;
        }
      }
      return pieces;
    }

   private:
    const WeightData& data_;
    size_t index_ = 0;
    uint64_t offset_ = 0;
  };

  // The weight files of the model saved here before that the new plan
  // does not write. An unreadable old model names none.
  std::vector<std::string> stale_keys(const std::vector<ShardPlan>& plan, Call& call) const {
    std::set<std::string> fresh;
    for (const ShardPlan& p : plan) fresh.insert(location_.folder + p.path);
    std::vector<std::string> stale;
    try {
      std::unique_ptr<BlobStore::Reader> reader = store_.reader(call);
      std::optional<Buffer> text = reader->get(model_key(), call);
      if (!text) return stale;
      ModelArtifacts old = parse_model_json(text->view(), store_.name_of(model_key()));
      for (const WeightGroup& group : old.weights_manifest.value_or(WeightsManifest{})) {
        for (const std::string& path : group.paths) {
          std::string key = weight_key(location_.folder, path, store_.name_of(model_key()));
          if (fresh.count(key) == 0 && key != model_key()) stale.push_back(std::move(key));
        }
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument && e.code() != ErrorCode::kDataLoss) throw;
      log(2, "save " + url_ + ": the model it replaces is unreadable (" + e.what() +
                 "); its weight files stay");
    }
    std::sort(stale.begin(), stale.end());
    stale.erase(std::unique(stale.begin(), stale.end()), stale.end());
    if (!stale.empty()) {
      std::unique_ptr<BlobStore::Reader> reader = store_.reader(call);
      drop_shared(stale, *reader, call);
    }
    return stale;
  }

  // Takes out of `keys` (files about to be deleted) the content-addressed
  // weight files that another model file in the folder names: digest-named
  // files are meant to be shared, TF.js-named ones are each model's own
  // (and are left as they are, at no cost of a listing).
  void drop_shared(std::vector<std::string>& keys, BlobStore::Reader& reader, Call& call) const {
    const bool addressed = std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
      return !content_address_prefix(std::string_view(k).substr(location_.folder.size())).empty();
    });
    if (!addressed) return;
    std::set<std::string> live;
    for (const BlobInfo& b : store_.list(location_.folder, call)) {
      std::string_view name = std::string_view(b.key).substr(location_.folder.size());
      if (b.key == model_key() || name.find('/') != std::string_view::npos || name.size() <= 5 ||
          !name.ends_with(".json")) {
        continue;
      }
      try {
        std::optional<Buffer> text = reader.get(b.key, call);
        if (!text) continue;
        ModelArtifacts other = parse_model_json(text->view(), store_.name_of(b.key));
        for (const WeightGroup& group : other.weights_manifest.value_or(WeightsManifest{})) {
          for (const std::string& path : group.paths) {
            live.insert(weight_key(location_.folder, path, store_.name_of(b.key)));
          }
        }
      } catch (const Error&) {
        // Not a model file (any JSON may sit in the folder): it names nothing.
      }
    }
    std::erase_if(keys, [&](const std::string& k) {
      return k != model_key() && live.count(k) != 0 &&
             !content_address_prefix(std::string_view(k).substr(location_.folder.size())).empty();
    });
  }

  Error changing() const {
    return Error(ErrorCode::kUnavailable,
                 "The model at " + url_ + " kept changing while it was loaded (" +
                     std::to_string(kLoadAttempts) + " attempts)",
                 /*retryable=*/true);
  }

  // A put, with progress made whole for stores that do not report it.
  static void put(BlobStore::Transaction& txn, const std::string& key,
                  const std::vector<Buffer>& pieces, uint64_t size, Call& call) {
    uint64_t before = call.done();
    txn.put(key, pieces, call);
    uint64_t reported = call.done() - before;
    if (reported < size) call.advance(size - reported);
  }

  // The pull form's total against the specs' fixed sizes (abi.h: the host
  // holds the buffers to that total).
  void check_total(const ModelArtifacts& meta, uint64_t total) const {
    if (!meta.weight_specs) return;
    uint64_t need = 0;
    for (const WeightSpec& spec : *meta.weight_specs) {
      std::optional<uint64_t> n = fixed_byte_size(spec);
      if (!n || __builtin_add_overflow(need, *n, &need)) return;
    }
    if (need == total) return;
    throw Error(ErrorCode::kInvalidArgument,
                "Refusing to save " + url_ + ": its weight specs need " + std::to_string(need) +
                    " bytes but the weight data holds " + std::to_string(total));
  }

  Error short_source(uint64_t total) const {
    return Error(ErrorCode::kDataLoss, "The weight data streamed to " + url_ + " is not the " +
                                           std::to_string(total) +
                                           " bytes it announced; nothing was saved");
  }

  void check_weights(const ModelArtifacts& artifacts) const {
    if (!artifacts.weight_specs || !artifacts.weight_data) return;
    try {
      validate_weight_bytes(artifacts, url_);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kDataLoss) throw;
      throw Error(ErrorCode::kInvalidArgument, std::string("Refusing to save ") + url_ +
                                                   ": its weight data does not match its "
                                                   "weight specs: " +
                                                   e.what());
    }
  }

  // describe() for list(): a save or remove that runs while the folder is
  // listed can leave the listed sizes from one version and model.json from
  // another, or model.json without its weight files. The model is described
  // again from fresh reads until model.json stayed the same blob from before
  // it was read to after its weight files were sized (a bounded number of
  // times; a model that keeps changing is listed as last read), and skipped
  // when it was removed meanwhile.
  std::optional<ListedModel> describe_listed(BlobStore::Reader& reader, const std::string& key,
                                             std::map<std::string, BlobInfo>& blobs,
                                             Call& call) const {
    constexpr int kAttempts = 8;
    auto same_blob = [](const BlobInfo& a, const BlobInfo& b) {
      return a.size == b.size && a.modified == b.modified;
    };
    auto listed = blobs.find(key);
    std::optional<BlobInfo> before =
        listed == blobs.end() ? std::nullopt : std::optional<BlobInfo>(listed->second);
    for (int attempt = 1;; ++attempt) {
      std::vector<std::string> keys;
      std::optional<ListedModel> m = describe(reader, key, blobs, call, &keys);
      if (!m) return std::nullopt;
      std::optional<BlobInfo> after = store_.stat(key, call);
      if (!after) return std::nullopt;
      if ((before && same_blob(*before, *after)) || attempt == kAttempts) return m;
      for (const std::string& k : keys) blobs.erase(k);
      blobs[key] = *after;
      before = after;
    }
  }

  // The listing of one model: its model.json URL and the info TF.js would
  // compute for it, with dateSaved from model.json's time. nullopt when
  // model.json does not exist. Sizes come from `blobs` or store.stat().
  // `keys`, when given, receives model.json then each weight file.
  std::optional<ListedModel> describe(BlobStore::Reader& reader, const std::string& key,
                                      std::map<std::string, BlobInfo>& blobs, Call& call,
                                      std::vector<std::string>* keys = nullptr) const {
    std::optional<Buffer> text = reader.get(key, call);
    if (!text) return std::nullopt;
    ModelArtifacts artifacts = parse_model_json(text->view(), store_.name_of(key));
    auto stat = [&](const std::string& k) -> std::optional<BlobInfo> {
      auto it = blobs.find(k);
      if (it != blobs.end()) return it->second;
      std::optional<BlobInfo> info = store_.stat(k, call);
      if (info) blobs[k] = *info;
      return info;
    };
    if (keys != nullptr) keys->push_back(key);
    const size_t slash = key.rfind('/');
    const std::string folder = slash == std::string::npos ? "" : key.substr(0, slash + 1);
    uint64_t weight_bytes = 0;
    std::set<std::string> seen;
    if (artifacts.weights_manifest) {
      for (const WeightGroup& group : *artifacts.weights_manifest) {
        for (const std::string& path : group.paths) {
          std::string shard = weight_key(folder, path, store_.name_of(key));
          if (!seen.insert(shard).second) continue;
          if (keys != nullptr) keys->push_back(shard);
          if (std::optional<BlobInfo> info = stat(shard)) weight_bytes += info->size;
        }
      }
    }
    ModelArtifactsInfo info = artifacts_info(artifacts);
    info.weight_data_bytes = weight_bytes;
    std::optional<BlobInfo> self = stat(key);
    info.date_saved =
        self && self->modified ? *self->modified : std::chrono::system_clock::time_point();
    return ListedModel{store_.url_of(key), info};
  }

  BlobStore& store_;
  BlobLocation location_;
  uint64_t shard_size_;
  std::string url_;
  BlobSaveOptions save_options_;
};

// A complete handler over a BlobStore at a fixed location.
class BlobStoreHandler : public Handler {
 public:
  // Reads the options "shard_size": bytes per weight file, 0 for one
  // weights.bin (default_shard_size when absent), "integrity" (
  // default_integrity when absent: a plugin that does not pass one records
  // no digests unless its caller asks) and "shard_names" (see
  // read_blob_save_options).
  BlobStoreHandler(std::string_view url, Options& options, std::unique_ptr<BlobStore> store,
                   BlobLocation location, uint64_t default_shard_size = 0,
                   Integrity default_integrity = Integrity::kNone)
      : Handler(url),
        store_(std::move(store)),
        location_(std::move(location)),
        shard_size_(options.get_uint64("shard_size", default_shard_size)),
        save_options_(read_blob_save_options(options, default_integrity)) {}

  ModelArtifacts load(Call& call) override { return layout().load(call); }
  std::optional<std::string> save(const ModelArtifacts& artifacts, Call& call) override {
    layout().save(artifacts, call);
    return std::nullopt;
  }
  std::vector<ListedModel> list(Call& call) override { return layout().list(call); }
  ModelArtifactsInfo remove(Call& call) override { return layout().remove(call); }

 protected:
  BlobStore& store() const noexcept { return *store_; }
  const BlobLocation& location() const noexcept { return location_; }
  BlobLayout layout() const {
    return BlobLayout(*store_, location_, shard_size_, url(), save_options_);
  }

 private:
  std::unique_ptr<BlobStore> store_;
  BlobLocation location_;
  uint64_t shard_size_;
  BlobSaveOptions save_options_;
};

}  // namespace stowage::plugin

#pragma GCC visibility pop
