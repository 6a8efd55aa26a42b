/*
 * The layout of ABI 1.0, measured from abi_v1_0.h (the first published
 * header) by the C compiler. abi_test.cpp compares it with the current
 * abi.h: every 1.0 field keeps its offset and size, every constant its value.
 */
#include <stddef.h>

#include "abi_v1_0.h"

#define FIELD(type, field) \
  { #type "." #field, offsetof(type, field), sizeof(((type*)0)->field) }

struct abi_v1_0_field {
  const char* name;
  size_t offset;
  size_t size;
};

const struct abi_v1_0_field abi_v1_0_fields[] = {
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
    {NULL, 0, 0},
};

/* name, value: the codes, capability bits and version numbers of 1.0. */
struct abi_v1_0_constant {
  const char* name;
  unsigned long long value;
};

const struct abi_v1_0_constant abi_v1_0_constants[] = {
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
    {NULL, 0},
};

const char abi_v1_0_entry_symbol[] = STOWAGE_ENTRY_SYMBOL;
