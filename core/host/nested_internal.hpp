// Nested URLs (abi.h host->nested_*): a plugin opens a handler for another
// URL through the registry that is opening it. The registry records, per
// thread, the chain of URLs being opened (NestScope), which tells
// nested_open which registry to use and lets it refuse cycles, chains
// deeper than kMaxNesting and re-entering a single-threaded plugin.
// Thread-safety: the chain is thread-local; the nested_* functions may be
// called from any thread except nested_open (inside ops->open only).
// Ownership: a stowage_nested owns its IOHandler; see abi.h for the rest.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "stowage/abi.h"
#include "stowage/handler.hpp"

namespace stowage {
class Registry;
}

struct stowage_nested {
  std::unique_ptr<stowage::IOHandler> handler;
};

namespace stowage::host {

// The most URLs one open may nest, the outermost included.
constexpr size_t kMaxNesting = 8;

// Marks `requested` (resolved to `resolved` by aliases) as being opened by
// `registry` on this thread for the scope's life. `plugin` identifies a
// single-threaded plugin whose call lock the open holds (NULL otherwise).
// Throws Error(kInvalidArgument) naming the chain when the open would close
// a cycle, go deeper than kMaxNesting or re-enter `plugin`.
class NestScope {
 public:
  NestScope(Registry& registry, std::string_view requested, const std::string& resolved,
            const void* single_threaded_plugin);
  ~NestScope();
  NestScope(const NestScope&) = delete;
  NestScope& operator=(const NestScope&) = delete;
};

// Whether the innermost URL being opened on this thread wraps `url` as a
// composed scheme does ("cache+" + url): the decorator is opening the URL
// it wraps, which the registry must not wrap again.
bool opened_by_wrapper_of(std::string_view url);

int32_t nested_open(const char* url, size_t url_len, const char* options_json, size_t options_len,
                    stowage_nested** out, stowage_status* st) noexcept;
void nested_close(stowage_nested* nested) noexcept;
int32_t nested_save(stowage_nested* nested, const stowage_artifacts* artifacts,
                    const stowage_call* call, stowage_sink* result, stowage_status* st) noexcept;
int32_t nested_load(stowage_nested* nested, const stowage_call* call, stowage_artifacts** out,
                    stowage_status* st) noexcept;
int32_t nested_load_stream(stowage_nested* nested, const stowage_call* call,
                           const stowage_load_consumer* consumer, stowage_status* st) noexcept;
void nested_artifacts_free(stowage_artifacts* artifacts) noexcept;
int32_t nested_list(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) noexcept;
int32_t nested_remove(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                      stowage_status* st) noexcept;
int32_t nested_stat(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) noexcept;

}  // namespace stowage::host
