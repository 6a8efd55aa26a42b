// Finding plugin files: the manifests in a plugin folder and the folders of
// a STOWAGE_PLUGIN_PATH value. Reading what they say is plugin_record's.
// Thread-safety: stateless functions.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

namespace stowage::host {

// The regular files named stowage-<name>.json in folder (not below it), in
// name order, so a scan is the same on every filesystem. Empty for a folder
// that cannot be read.
std::vector<std::filesystem::path> manifests_in(const std::filesystem::path& folder);

// The folders of a colon-separated search path, in order; empty elements
// (a leading, doubled or trailing ':') name nothing.
std::vector<std::filesystem::path> split_search_path(std::string_view path);

}  // namespace stowage::host
