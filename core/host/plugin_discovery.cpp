// Finding plugin files (plugin_discovery_internal.hpp).
#include <algorithm>
#include <string>

#include "manifest_internal.hpp"
#include "plugin_discovery_internal.hpp"

namespace stowage::host {

namespace fs = std::filesystem;

std::vector<fs::path> manifests_in(const fs::path& folder) {
  std::vector<fs::path> manifests;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (plugin_name_from_manifest_file(p).empty()) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    manifests.push_back(p);
  }
  std::sort(manifests.begin(), manifests.end());
  return manifests;
}

std::vector<fs::path> split_search_path(std::string_view path) {
  std::vector<fs::path> folders;
  std::string_view rest = path;
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    if (!dir.empty()) folders.emplace_back(std::string(dir));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return folders;
}

}  // namespace stowage::host
