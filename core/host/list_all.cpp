// list_models() with no URL: TF.js's listModels() over every manager it has
// (localstorage and indexeddb in a browser), here every default location.
#include <algorithm>
#include <map>

#include "stowage/error.hpp"
#include "stowage/management.hpp"

namespace stowage {
namespace {

// TF.js lists the browser's two stores; memory:// is the native program's
// own in-process store.
const std::vector<std::string> kDefaultLocations = {"localstorage://", "indexeddb://", "memory://"};

Error naming(const Error& e, const std::string& url) {
  if (std::string_view(e.what()).find(url) != std::string_view::npos) return e;
  return Error(e.code(), "listing '" + url + "': " + e.what(), e.retryable());
}

}  // namespace

std::vector<ListedModel> list_models(Registry& registry) {
  const std::optional<std::vector<std::string>> configured = registry.list_locations();
  const std::vector<std::string>& locations = configured ? *configured : kDefaultLocations;
  std::vector<ListedModel> out;
  std::map<std::string, size_t> position;
  for (const std::string& url : locations) {
    std::unique_ptr<IOHandler> handler;
    try {
      if (!configured) {
        const std::vector<std::string> served = registry.schemes();
        if (std::find(served.begin(), served.end(), url_scheme(url)) == served.end()) continue;
      }
      handler = registry.open(url);
    } catch (const Error& e) {
      throw naming(e, url);
    }
    if (!handler->can_list()) {
      if (!configured) continue;
      throw Error(ErrorCode::kUnimplemented,
                  "Cannot list '" + url + "' (named in the config's list_locations): the handler " +
                      "of scheme '" + url_scheme(url) + "' cannot list models.");
    }
    std::vector<ListedModel> models;
    try {
      models = handler->list();
    } catch (const Error& e) {
      throw naming(e, url);
    }
    for (ListedModel& m : models) {
      auto [it, fresh] = position.emplace(m.url, out.size());
      if (fresh) {
        out.push_back(std::move(m));
      } else {
        out[it->second] = std::move(m);
      }
    }
  }
  return out;
}

}  // namespace stowage
