// TF.js's BrowserLocalStorage (spec §4.2) over an origin's SQLite store.
#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <map>

#include "base64_internal.hpp"
#include "local_storage_internal.hpp"
#include "stowage/base64.hpp"
#include "stowage/digest.hpp"
#include "stowage/error.hpp"
#include "stowage/model_json.hpp"

namespace stowage::browser {
namespace {

// The items of one model, in the order TF.js sets them.
constexpr std::array<std::string_view, 5> kParts = {"info", "model_topology", "weight_specs",
                                                    "weight_data", "model_metadata"};
// stowage's sixth item, beside them: the weight data's digest
// (docs/integrity.md). TF.js's listModels reads only ".../info" keys.
constexpr std::string_view kDigestPart = "weight_data_sha256";

std::string item_key(const std::string& path, std::string_view part) {
  return std::string(kLocalStoragePrefix) + path + "/" + std::string(part);
}

// JSON.stringify(undefined) is undefined, which setItem stores as the
// string "undefined" (a TF.js quirk kept for byte compatibility).
constexpr std::string_view kUndefined = "undefined";

// The model_metadata item: keys in TF.js's order; format, generatedBy and
// convertedBy as they are (null stays null), the rest only when present.
std::string metadata_json(const ModelArtifacts& a) {
  std::string out = "{";
  auto key = [&out](std::string_view k) {
    if (out.size() > 1) out += ',';
    out += json::quote(k);
    out += ':';
  };
  auto nullable = [&](std::string_view k, const NullableString& v) {
    if (!v.present()) return;
    key(k);
    out += v.is_null() ? std::string("null") : json::quote(v.value());
  };
  auto object = [&](std::string_view k, const std::optional<std::string>& v) {
    if (!v) return;
    key(k);
    out += *v;
  };
  nullable("format", a.format);
  nullable("generatedBy", a.generated_by);
  nullable("convertedBy", a.converted_by);
  object("signature", a.signature);
  object("userDefinedMetadata", a.user_defined_metadata);
  object("modelInitializer", a.model_initializer);
  object("initializerSignature", a.initializer_signature);
  object("trainingConfig", a.training_config);
  return out + "}";
}

// With `digest`, each piece is also hashed as it is encoded (one pass).
std::string weight_data_base64(const ModelArtifacts& a, const Pace& pace, Sha256* digest) {
  std::string out;
  if (!a.weight_data) return out;
  out.reserve((total_size(*a.weight_data) + 2) / 3 * 4);
  Base64Encoder encoder;
  constexpr uint64_t kStep = 4ull << 20;
  for (const Buffer& b : *a.weight_data) {
    for (uint64_t at = 0; at < b.size(); at += kStep) {
      const uint64_t n = std::min(kStep, b.size() - at);
      const auto piece = b.bytes().subspan(static_cast<size_t>(at), static_cast<size_t>(n));
      if (digest != nullptr) digest->update(piece);
      encoder.add(piece, out);
      if (pace.advance) pace.advance(n);
      if (pace.check) pace.check();
    }
  }
  encoder.finish(out);
  return out;
}

std::unique_ptr<Database> open_db(const StoreLocation& where, bool create,
                                  const Database::Settings& settings) {
  return Database::open(where, create, settings);
}

uint64_t sum_units(Database& db) {
  Statement s(db, "SELECT COALESCE(SUM(units), 0) FROM local_storage");
  s.step();
  return static_cast<uint64_t>(s.column_int(0));
}

// The stored items of one model (TF.js's and the digest item), by part name.
std::map<std::string, std::string, std::less<>> read_model(Database& db, const std::string& path) {
  Statement s(db, "SELECT key, value FROM local_storage WHERE key IN (?, ?, ?, ?, ?, ?)");
  std::array<std::string, 6> keys;
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i] = item_key(path, i < kParts.size() ? kParts[i] : kDigestPart);
    s.bind_text(static_cast<int>(i), keys[i]);
  }
  std::map<std::string, std::string, std::less<>> out;
  const size_t strip = kLocalStoragePrefix.size() + path.size() + 1;
  while (s.step()) out.emplace(s.column_text(0).substr(strip), s.column_text(1));
  return out;
}

std::string quoted_path(const std::string& path) { return "'" + path + "'"; }

// The store's name in the generation keys.
constexpr std::string_view kGenerationStore = "localstorage";

// The value of the digest item: the weight data's SHA-256 and the dateSaved
// of the info item written with it. TF.js never reads or removes the item,
// so a model TF.js saves over one stowage saved leaves it behind; its
// dateSaved then differs from the info item's, and the digest is not used.
std::string digest_item(std::string_view sha256, const ModelArtifactsInfo& info) {
  return "{\"sha256\":" + json::quote(sha256) +
         ",\"dateSaved\":" + json::quote(iso_date(info.date_saved)) + "}";
}

// The digest the item records for the model whose info is `info`; none
// when the item belongs to an earlier save. Error(kInvalidArgument) naming
// the item when it is not what digest_item writes.
std::optional<std::string> read_digest_item(std::string_view value, const ModelArtifactsInfo& info,
                                            const std::string& source) {
  rapidjson::Document doc;
  doc.Parse(value.data(), value.size());
  auto member = [&doc](const char* name) -> std::optional<std::string_view> {
    if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsString()) return std::nullopt;
    return std::string_view(it->value.GetString(), it->value.GetStringLength());
  };
  const std::optional<std::string_view> sha256 = member("sha256");
  const std::optional<std::string_view> date = member("dateSaved");
  if (!sha256 || !is_sha256_hex(*sha256) || !date) {
    throw Error(ErrorCode::kInvalidArgument,
                source +
                    " must be {\"sha256\": 64 lowercase hex digits, \"dateSaved\": the info "
                    "item's dateSaved}");
  }
  if (*date != iso_date(info.date_saved)) return std::nullopt;
  return std::string(*sha256);
}

}  // namespace

uint64_t local_storage_cost(std::string_view key, std::string_view value) noexcept {
  return 2 * (utf16_units(key) + utf16_units(value));
}

ModelArtifactsInfo LocalStorage::save_model(const std::string& path,
                                            const ModelArtifacts& artifacts, bool record_digest,
                                            const Pace& pace) const {
  const ModelArtifactsInfo info = artifacts_info(artifacts);
  if (pace.set_total)
    pace.set_total(artifacts.weight_data ? total_size(*artifacts.weight_data) : 0);
  const bool digest = record_digest && artifacts.weight_data.has_value();
  Sha256 hash;
  std::array<std::string, 6> values = {
      info_to_json(info),
      artifacts.model_topology ? *artifacts.model_topology : std::string(kUndefined),
      artifacts.weight_specs ? specs_to_json(*artifacts.weight_specs) : std::string(kUndefined),
      weight_data_base64(artifacts, pace, digest ? &hash : nullptr),
      metadata_json(artifacts),
      digest ? digest_item(hash.finish_hex(), info) : std::string(),
  };
  // TF.js's five items, then the digest item when one is recorded.
  const size_t count = digest ? 6 : 5;
  std::array<std::string, 6> keys;
  uint64_t needed_units = 0;
  std::array<uint64_t, 6> units{};
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i] = item_key(path, i < kParts.size() ? kParts[i] : kDigestPart);
    if (i >= count) continue;
    units[i] = utf16_units(keys[i]) + utf16_units(values[i]);
    needed_units += units[i];
  }
  if (pace.check) pace.check();

  auto db = open_db(where_, /*create=*/true, settings_);
  Transaction t(*db, /*write=*/true);
  const uint64_t used = sum_units(*db);
  Statement old(*db,
                "SELECT COALESCE(SUM(units), 0) FROM local_storage WHERE key IN (?,?,?,?,?,?)");
  for (size_t i = 0; i < keys.size(); ++i) old.bind_text(static_cast<int>(i), keys[i]);
  old.step();
  const uint64_t replaced = static_cast<uint64_t>(old.column_int(0));
  const uint64_t after = used - replaced + needed_units;
  // As in Chromium, a write that does not grow the origin's usage is never
  // refused, even above a quota that was lowered meanwhile.
  if (2 * after > quota_ && after > used) {
    const uint64_t others = 2 * (used - replaced);
    const uint64_t free = quota_ > others ? quota_ - others : 0;
    throw Error(ErrorCode::kResourceExhausted,
                "Failed to save model " + quoted_path(path) +
                    " to local storage: the localStorage quota of origin " + where_.origin +
                    " would be exceeded: the model needs " + std::to_string(2 * needed_units) +
                    " bytes and " + std::to_string(free) + " bytes are free (quota " +
                    std::to_string(quota_) +
                    " bytes, counting 2 bytes per UTF-16 code unit of keys and values as "
                    "Chromium does). Nothing was written; the model previously saved there, if "
                    "any, is unchanged. modelTopologyBytes=" +
                    std::to_string(info.model_topology_bytes) +
                    ", weightSpecsBytes=" + std::to_string(info.weight_specs_bytes) +
                    ", weightDataBytes=" + std::to_string(info.weight_data_bytes.value_or(0)) +
                    ".");
  }
  Statement put(*db, "INSERT OR REPLACE INTO local_storage(key, value, units) VALUES(?, ?, ?)");
  for (size_t i = 0; i < count; ++i) {
    put.bind_text(0, keys[i]).bind_text(1, values[i]).bind_int(2, static_cast<int64_t>(units[i]));
    put.step();
    put.reset();
  }
  // A save without a digest drops the one an earlier save recorded.
  if (!digest)
    Statement(*db, "DELETE FROM local_storage WHERE key = ?").bind_text(0, keys[5]).step();
  bump_generations(*db, kGenerationStore, {path});
  if (pace.check) pace.check();
  t.commit();
  return info;
}

namespace {

using Items = std::map<std::string, std::string, std::less<>>;

const std::string* find_item(const Items& items, std::string_view part) {
  auto it = items.find(part);
  return it == items.end() ? nullptr : &it->second;
}

// Steps 2 to 4 of BrowserLocalStorage.load (the info item already read and
// checked): every field but the weight data.
ModelArtifacts read_fields(const Items& items, const std::string& path) {
  const std::string url = "localstorage://" + path;
  auto source = [&](std::string_view part) { return url + " (item " + item_key(path, part) + ")"; };
  // 2. topology. "undefined" is what a save without one stored: TF.js
  // cannot parse it back, stowage reads it as "no topology" (a weights-only
  // model).
  const std::string* topology = find_item(items, "model_topology");
  if (topology == nullptr || *topology == "null") {
    throw Error(ErrorCode::kDataLoss,
                "In local storage, the topology of model " + quoted_path(path) + " is missing.");
  }
  ModelArtifacts a;
  if (*topology != kUndefined) {
    a.model_topology = json::normalize(*topology, source("model_topology"));
  }
  // 3. weight specs; TF.js cannot load the "undefined" it stores for a
  // model saved without specs, stowage reads it as "no specs".
  const std::string* specs = find_item(items, "weight_specs");
  if (specs == nullptr || *specs == "null") {
    throw Error(ErrorCode::kDataLoss, "In local storage, the weight specs of model " +
                                          quoted_path(path) + " are missing.");
  }
  if (*specs != kUndefined) {
    a.weight_specs =
        parse_model_json("{\"weightSpecs\":" + *specs + "}", source("weight_specs")).weight_specs;
  }
  // 4. metadata, when there is any (data written before 1.x has none).
  if (const std::string* metadata = find_item(items, "model_metadata")) {
    ModelArtifacts m = parse_model_json(*metadata, source("model_metadata"));
    a.format = std::move(m.format);
    a.generated_by = std::move(m.generated_by);
    a.converted_by = std::move(m.converted_by);
    a.signature = std::move(m.signature);
    a.user_defined_metadata = std::move(m.user_defined_metadata);
    a.model_initializer = std::move(m.model_initializer);
    a.initializer_signature = std::move(m.initializer_signature);
    a.training_config = std::move(m.training_config);
  }
  return a;
}

Error missing_weight_data(const std::string& path) {
  return Error(ErrorCode::kDataLoss, "In local storage, the binary weight values of model " +
                                         quoted_path(path) + " are missing.");
}

Error bad_weight_data(const std::string& path, uint64_t bad, uint64_t size) {
  return Error(ErrorCode::kDataLoss, "In local storage, the binary weight values of model " +
                                         quoted_path(path) +
                                         " are not valid base64 (at character " +
                                         std::to_string(bad) + " of " + std::to_string(size) + ")");
}

// The weight data (one buffer) described by a manifest of one group with one
// path and the digest the digest item records, when it records one for this
// save (docs/integrity.md).
void describe_by_digest(ModelArtifacts& a, const Items& items, const ModelArtifactsInfo& info,
                        const std::string& path) {
  const std::string* item = find_item(items, kDigestPart);
  if (item == nullptr) return;
  std::optional<std::string> digest = read_digest_item(
      *item, info, "localstorage://" + path + " (item " + item_key(path, kDigestPart) + ")");
  if (!digest) return;
  WeightGroup group;
  group.paths = {std::string(kParts[3])};
  group.weights = a.weight_specs.value_or(std::vector<WeightSpec>{});
  group.sha256 = std::vector<std::string>{std::move(*digest)};
  a.weights_manifest = WeightsManifest{std::move(group)};
}

// A topology-only save stores no specs and "" as data: load gives back no data.
bool loads_no_data(std::string_view data, const ModelArtifacts& fields) {
  return data.empty() && !fields.weight_specs;
}

}  // namespace

ModelArtifacts LocalStorage::load_model(const std::string& path, const Pace& pace) const {
  const std::string url = "localstorage://" + path;
  auto db = open_db(where_, /*create=*/false, settings_);
  Items items;
  if (db) items = read_model(*db, path);
  db.reset();

  // 1. info
  const std::string* info_text = find_item(items, "info");
  if (info_text == nullptr) {
    throw Error(ErrorCode::kNotFound,
                "In local storage, there is no model with name " + quoted_path(path));
  }
  const ModelArtifactsInfo info =
      info_from_json(*info_text, url + " (item " + item_key(path, "info") + ")");
  if (info.model_topology_type != "JSON") {
    throw Error(ErrorCode::kUnimplemented,
                "BrowserLocalStorage does not support loading non-JSON model topology yet.");
  }
  ModelArtifacts a = read_fields(items, path);
  // 5. weight data, base64 into one buffer, as TF.js decodes it.
  const std::string* data = find_item(items, "weight_data");
  if (data == nullptr) throw missing_weight_data(path);
  uint64_t bad = 0;
  const std::optional<uint64_t> size = base64_decoded_size(*data, &bad);
  if (!size) throw bad_weight_data(path, bad, data->size());
  if (pace.set_total) pace.set_total(*size);
  if (!loads_no_data(*data, a)) {
    std::shared_ptr<uint8_t[]> bytes(new uint8_t[std::max<uint64_t>(*size, 1)]);
    base64_decode(*data, bytes.get());
    const uint8_t* p = bytes.get();
    a.weight_data = WeightData{Buffer::wrap(p, *size, std::move(bytes), url)};
    // 6. stowage's: the recorded digest, which the host checks.
    describe_by_digest(a, items, info, path);
  }
  if (pace.advance) pace.advance(*size);
  return a;
}

ModelStat LocalStorage::stat_model(const std::string& path) const {
  const std::string url = "localstorage://" + path;
  auto missing = [&] {
    return Error(ErrorCode::kNotFound, "No model at " + url +
                                           ": in local storage, there is no model with name " +
                                           quoted_path(path));
  };
  auto db = open_db(where_, /*create=*/false, settings_);
  if (!db) throw missing();
  Transaction t(*db, /*write=*/false);
  // Every item but the weight data, of which only its length is read (from
  // the units column, not from the value).
  Statement s(*db,
              "SELECT key, CASE WHEN key = ?5 THEN NULL ELSE value END, units, rowid FROM "
              "local_storage WHERE key IN (?1, ?2, ?3, ?4, ?5, ?6)");
  std::array<std::string, 6> keys;
  for (size_t i = 0; i < kParts.size(); ++i) keys[i] = item_key(path, kParts[i]);
  keys[5] = item_key(path, kDigestPart);
  // ?5 is the weight data's key.
  s.bind_text(0, keys[0]).bind_text(1, keys[1]).bind_text(2, keys[2]).bind_text(3, keys[4]);
  s.bind_text(4, keys[3]).bind_text(5, keys[5]);
  Items items;
  std::optional<uint64_t> data_length;
  int64_t info_row = 0;
  const size_t strip = kLocalStoragePrefix.size() + path.size() + 1;
  while (s.step()) {
    const std::string_view key = s.column_text(0);
    const std::string_view part = key.substr(strip);
    if (part == "weight_data") {
      data_length = static_cast<uint64_t>(s.column_int(2)) - utf16_units(key);
      continue;
    }
    if (part == "info") info_row = s.column_int(3);
    items.emplace(part, s.column_text(1));
  }
  const std::string* info_text = find_item(items, "info");
  if (info_text == nullptr) throw missing();
  const ModelArtifactsInfo stored =
      info_from_json(*info_text, url + " (item " + item_key(path, "info") + ")");
  if (stored.model_topology_type != "JSON") {
    throw Error(ErrorCode::kUnimplemented,
                "BrowserLocalStorage does not support loading non-JSON model topology yet.");
  }
  ModelStat out;
  out.model = read_fields(items, path);
  if (!data_length) throw missing_weight_data(path);
  out.info = artifacts_info(out.model, stored.date_saved);
  if (!(*data_length == 0 && !out.model.weight_specs)) {
    // The info item's weightDataBytes (TF.js and stowage write the byte
    // length there) when the base64 text's length agrees with it; else the
    // text is scanned as load decodes it (a hand-made item).
    const uint64_t full = *data_length / 4 * 3;
    const std::optional<uint64_t> said = stored.weight_data_bytes;
    if (said && *data_length % 4 == 0 && *said <= full && *said + 2 >= full &&
        (*data_length > 0 || *said == 0)) {
      out.info.weight_data_bytes = *said;
    } else {
      Statement value(*db, "SELECT value FROM local_storage WHERE key = ?");
      value.bind_text(0, keys[3]);
      value.step();
      uint64_t bad = 0;
      const std::string_view text = value.column_text(0);
      const std::optional<uint64_t> size = base64_decoded_size(text, &bad);
      if (!size) throw bad_weight_data(path, bad, text.size());
      out.info.weight_data_bytes = *size;
    }
    describe_by_digest(out.model, items, stored, path);
  }
  // The rowid changes with every write of the info item, also by a stowage
  // that writes no generations.
  out.version = "localstorage/" + std::to_string(generation(*db, kGenerationStore, path)) + "/" +
                std::to_string(info_row);
  return out;
}

std::vector<std::pair<std::string, ModelArtifactsInfo>> LocalStorage::list_models(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, ModelArtifactsInfo>> out;
  auto db = open_db(where_, /*create=*/false, settings_);
  if (!db) return out;
  // Keys from "tensorflowjs_models/" up to "tensorflowjs_models0" ('0' follows '/').
  Statement s(*db, "SELECT key, value FROM local_storage WHERE key >= ? AND key < ? ORDER BY key");
  const std::string low(kLocalStoragePrefix);
  const std::string high = low.substr(0, low.size() - 1) + "0";
  s.bind_text(0, low).bind_text(1, high);
  const std::string under =
      prefix.empty() || prefix.ends_with('/') ? std::string(prefix) : std::string(prefix) + "/";
  constexpr std::string_view kInfo = "/info";
  while (s.step()) {
    const std::string_view key = s.column_text(0);
    if (!key.ends_with(kInfo) || key.size() < low.size() + kInfo.size()) continue;
    // TF.js: the segments between the first and the last.
    std::string path(key.substr(low.size(), key.size() - low.size() - kInfo.size()));
    if (!prefix.empty() && path != prefix && !path.starts_with(under)) continue;
    out.emplace_back(path,
                     info_from_json(s.column_text(1), "localstorage item " + std::string(key)));
  }
  return out;
}

ModelArtifactsInfo LocalStorage::remove_model(const std::string& path) const {
  auto db = open_db(where_, /*create=*/false, settings_);
  auto missing = [&path] {
    return Error(ErrorCode::kNotFound, "Cannot find model at path " + quoted_path(path));
  };
  if (!db) throw missing();
  Transaction t(*db, /*write=*/true);
  Statement get(*db, "SELECT value FROM local_storage WHERE key = ?");
  const std::string info_key = item_key(path, "info");
  get.bind_text(0, info_key);
  if (!get.step()) throw missing();
  const ModelArtifactsInfo info =
      info_from_json(get.column_text(0), "localstorage item " + info_key);
  get.reset();
  Statement del(*db, "DELETE FROM local_storage WHERE key = ?");
  for (size_t i = 0; i <= kParts.size(); ++i) {
    const std::string key = item_key(path, i < kParts.size() ? kParts[i] : kDigestPart);
    del.bind_text(0, key).step();
    del.reset();
  }
  forget_generation(*db, kGenerationStore, path);
  t.commit();
  return info;
}

std::vector<std::pair<std::string, std::string>> LocalStorage::items() const {
  std::vector<std::pair<std::string, std::string>> out;
  auto db = open_db(where_, /*create=*/false, settings_);
  if (!db) return out;
  Statement s(*db, "SELECT key, value FROM local_storage ORDER BY key");
  while (s.step()) out.emplace_back(s.column_text(0), s.column_text(1));
  return out;
}

void LocalStorage::put_items(const std::vector<std::pair<std::string, std::string>>& items,
                             bool clear) const {
  auto db = open_db(where_, /*create=*/true, settings_);
  Transaction t(*db, /*write=*/true);
  const uint64_t before = sum_units(*db);
  if (clear) {
    db->exec("DELETE FROM local_storage");
    forget_generations(*db, kGenerationStore);
  }
  // Each model an item belongs to ("tensorflowjs_models/<path>/<part>") is
  // written anew.
  std::vector<std::string> models;
  for (const auto& item : items) {
    const std::string& key = item.first;
    const size_t last = key.rfind('/');
    if (key.starts_with(kLocalStoragePrefix) && last > kLocalStoragePrefix.size()) {
      models.push_back(key.substr(kLocalStoragePrefix.size(), last - kLocalStoragePrefix.size()));
    }
  }
  std::sort(models.begin(), models.end());
  models.erase(std::unique(models.begin(), models.end()), models.end());
  bump_generations(*db, kGenerationStore, models);
  Statement put(*db, "INSERT OR REPLACE INTO local_storage(key, value, units) VALUES(?, ?, ?)");
  for (const auto& [key, value] : items) {
    put.bind_text(0, key).bind_text(1, value).bind_int(
        2, static_cast<int64_t>(utf16_units(key) + utf16_units(value)));
    put.step();
    put.reset();
  }
  const uint64_t after = sum_units(*db);
  if (2 * after > quota_ && after > before) {
    throw Error(ErrorCode::kResourceExhausted,
                "The localStorage items would take " + std::to_string(2 * after) +
                    " bytes, more than the quota of origin " + where_.origin + " (" +
                    std::to_string(quota_) +
                    " bytes, counting 2 bytes per UTF-16 code unit of keys and values); nothing "
                    "was written");
  }
  t.commit();
}

uint64_t LocalStorage::used_bytes() const {
  auto db = open_db(where_, /*create=*/false, settings_);
  return db ? 2 * sum_units(*db) : 0;
}

}  // namespace stowage::browser
