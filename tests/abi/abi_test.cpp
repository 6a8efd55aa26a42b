// ABI 1.0 forever: the first published abi.h (kept as abi_v1_0.h) against
// the current one, and a plugin built against abi_v1_0.h loaded and used by
// the current core.
#include "stowage/abi.h"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <string>

#include "stowage/registry.hpp"

extern "C" {
struct abi_v1_0_field {
  const char* name;
  size_t offset;
  size_t size;
};
struct abi_v1_0_constant {
  const char* name;
  unsigned long long value;
};
extern const abi_v1_0_field abi_v1_0_fields[];
extern const abi_v1_0_constant abi_v1_0_constants[];
extern const char abi_v1_0_entry_symbol[];
}

namespace {

#define FIELD(type, field)                                                                  \
  {                                                                                         \
#type "." #field, { offsetof(type, field), sizeof(static_cast<type*>(nullptr)->field) } \
  }

const std::map<std::string, std::pair<size_t, size_t>>& current_fields() {
  static const std::map<std::string, std::pair<size_t, size_t>> fields = {
      FIELD(stowage_buffer, data),
      FIELD(stowage_buffer, size),
      FIELD(stowage_buffer, release),
      FIELD(stowage_buffer, private_data),
      FIELD(stowage_buffer, label),
      FIELD(stowage_call, struct_size),
      FIELD(stowage_call, reserved0),
      FIELD(stowage_call, deadline_unix_ms),
      FIELD(stowage_call, host_context),
      FIELD(stowage_call, is_cancelled),
      FIELD(stowage_call, progress),
      FIELD(stowage_call, convert_weight_url),
      FIELD(stowage_artifacts, struct_size),
      FIELD(stowage_artifacts, has_weight_data),
      FIELD(stowage_artifacts, json),
      FIELD(stowage_artifacts, json_size),
      FIELD(stowage_artifacts, buffers),
      FIELD(stowage_artifacts, buffer_count),
      FIELD(stowage_artifacts, weight_bytes),
      FIELD(stowage_host_api, struct_size),
      FIELD(stowage_host_api, abi_major),
      FIELD(stowage_host_api, abi_minor),
      FIELD(stowage_host_api, reserved0),
      FIELD(stowage_host_api, status_set),
      FIELD(stowage_host_api, sink_set_text),
      FIELD(stowage_host_api, sink_add_buffer),
      FIELD(stowage_host_api, sink_add_model),
      FIELD(stowage_host_api, buffer_share),
      FIELD(stowage_host_api, log),
      FIELD(stowage_host_api, sink_new_text),
      FIELD(stowage_host_api, sink_get_text),
      FIELD(stowage_host_api, sink_free),
      FIELD(stowage_ops, struct_size),
      FIELD(stowage_ops, reserved0),
      FIELD(stowage_ops, open),
      FIELD(stowage_ops, close),
      FIELD(stowage_ops, save),
      FIELD(stowage_ops, load),
      FIELD(stowage_ops, list),
      FIELD(stowage_ops, remove),
      FIELD(stowage_plugin_desc, struct_size),
      FIELD(stowage_plugin_desc, abi_major),
      FIELD(stowage_plugin_desc, abi_minor),
      FIELD(stowage_plugin_desc, scheme_count),
      FIELD(stowage_plugin_desc, name),
      FIELD(stowage_plugin_desc, version),
      FIELD(stowage_plugin_desc, schemes),
      FIELD(stowage_plugin_desc, capabilities),
      FIELD(stowage_plugin_desc, ops),
  };
  return fields;
}

const std::map<std::string, unsigned long long>& current_constants() {
  static const std::map<std::string, unsigned long long> constants = {
      {"STOWAGE_ABI_MAJOR", STOWAGE_ABI_MAJOR},
      {"STOWAGE_OK", STOWAGE_OK},
      {"STOWAGE_NOT_FOUND", STOWAGE_NOT_FOUND},
      {"STOWAGE_INVALID_ARGUMENT", STOWAGE_INVALID_ARGUMENT},
      {"STOWAGE_ALREADY_EXISTS", STOWAGE_ALREADY_EXISTS},
      {"STOWAGE_PERMISSION_DENIED", STOWAGE_PERMISSION_DENIED},
      {"STOWAGE_UNAVAILABLE", STOWAGE_UNAVAILABLE},
      {"STOWAGE_DATA_LOSS", STOWAGE_DATA_LOSS},
      {"STOWAGE_RESOURCE_EXHAUSTED", STOWAGE_RESOURCE_EXHAUSTED},
      {"STOWAGE_CANCELLED", STOWAGE_CANCELLED},
      {"STOWAGE_DEADLINE_EXCEEDED", STOWAGE_DEADLINE_EXCEEDED},
      {"STOWAGE_UNIMPLEMENTED", STOWAGE_UNIMPLEMENTED},
      {"STOWAGE_INTERNAL", STOWAGE_INTERNAL},
      {"STOWAGE_CAP_LOAD", STOWAGE_CAP_LOAD},
      {"STOWAGE_CAP_SAVE", STOWAGE_CAP_SAVE},
      {"STOWAGE_CAP_LIST", STOWAGE_CAP_LIST},
      {"STOWAGE_CAP_REMOVE", STOWAGE_CAP_REMOVE},
      {"STOWAGE_CAP_ZERO_COPY", STOWAGE_CAP_ZERO_COPY},
      {"STOWAGE_CAP_ATOMIC_SAVE", STOWAGE_CAP_ATOMIC_SAVE},
      {"STOWAGE_CAP_SINGLE_THREADED", STOWAGE_CAP_SINGLE_THREADED},
  };
  return constants;
}

TEST_CASE("every ABI 1.0 field keeps its offset and size in the current abi.h") {
  int n = 0;
  for (const abi_v1_0_field* f = abi_v1_0_fields; f->name != nullptr; ++f, ++n) {
    INFO(f->name);
    auto it = current_fields().find(f->name);
    REQUIRE(it != current_fields().end());
    CHECK(it->second.first == f->offset);
    CHECK(it->second.second == f->size);
  }
  CHECK(n == static_cast<int>(current_fields().size()));
}

TEST_CASE("every ABI 1.0 constant keeps its value, and the entry symbol its name") {
  for (const abi_v1_0_constant* c = abi_v1_0_constants; c->name != nullptr; ++c) {
    INFO(c->name);
    auto it = current_constants().find(c->name);
    REQUIRE(it != current_constants().end());
    CHECK(it->second == c->value);
  }
  CHECK(std::string(abi_v1_0_entry_symbol) == STOWAGE_ENTRY_SYMBOL);
}

// The one place that knows the current minor: a change that adds to abi.h
// bumps STOWAGE_ABI_MINOR and this literal together, and a bump nobody meant
// (or a forgotten one, caught in review of abi.h) shows up here.
TEST_CASE("abi.h defines ABI 1.5") {
  CHECK(STOWAGE_ABI_MAJOR == 1u);
  CHECK(STOWAGE_ABI_MINOR == 5u);
}

// abi.h's versioning rule for the 1.x additions after 1.0: each is appended
// at the end of its struct. ABI 1.4 and 1.5 added one host service each.
TEST_CASE("ABI 1.4's and 1.5's host services are appended after ABI 1.2's last one") {
  CHECK(offsetof(stowage_host_api, sink_mark_verified) ==
        offsetof(stowage_host_api, status_set_request) + sizeof(void*));
  CHECK(offsetof(stowage_host_api, nested_load_stream) ==
        offsetof(stowage_host_api, sink_mark_verified) + sizeof(void*));
  CHECK(sizeof(stowage_host_api) == offsetof(stowage_host_api, nested_load_stream) + sizeof(void*));
}

// ABI 1.5's consumer struct is new: its layout is frozen from here on.
TEST_CASE("stowage_load_consumer's layout") {
  CHECK(offsetof(stowage_load_consumer, context) == 8u);
  CHECK(offsetof(stowage_load_consumer, on_artifacts) == 8u + sizeof(void*));
  CHECK(offsetof(stowage_load_consumer, on_buffer) == 8u + 2 * sizeof(void*));
  CHECK(offsetof(stowage_load_consumer, queue_bytes) == 8u + 3 * sizeof(void*));
  CHECK(sizeof(stowage_load_consumer) == 16u + 3 * sizeof(void*));
}

TEST_CASE("a plugin built against ABI 1.0 loads in the current core and works") {
  stowage::Registry registry;
  registry.add_plugin(std::string(STOWAGE_ABI10_MANIFEST));
  auto handler = registry.open("abi10://abi-test/model");
  stowage::PluginInfo info = registry.plugins().at(0);
  CHECK(info.loaded);
  CHECK(info.abi_major == 1u);
  CHECK(info.abi_minor == 0u);
  CHECK(info.capabilities ==
        std::vector<std::string>{"load", "save", "list", "remove", "atomic_save"});

  stowage::ModelArtifacts model;
  model.model_topology = R"({"class_name":"Sequential","config":{"name":"abi10"}})";
  model.format = "layers-model";
  model.weight_specs = std::vector<stowage::WeightSpec>{{"w", {3}, "float32", {}, {}}};
  const float values[3] = {1.5f, -2.0f, 0.25f};
  model.weight_data = stowage::WeightData{
      stowage::Buffer::copy_of({reinterpret_cast<const uint8_t*>(values), sizeof values})};
  stowage::SaveResult saved = handler->save(model);
  CHECK(saved.model_artifacts_info.weight_data_bytes == 12u);

  stowage::ModelArtifacts loaded = handler->load();
  CHECK(loaded.model_topology == model.model_topology);
  REQUIRE(loaded.weight_data.has_value());
  REQUIRE(loaded.weight_data->size() == 1);
  CHECK(std::memcmp(loaded.weight_data->at(0).data(), values, sizeof values) == 0);

  auto listed = registry.open("abi10://abi-test")->list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].url == "abi10://abi-test/model");
  CHECK(listed[0].info.model_topology_bytes == model.model_topology->size());
  CHECK(handler->remove().weight_data_bytes == 12u);
}

}  // namespace
