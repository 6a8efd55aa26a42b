// downloads://<name>: TF.js's BrowserDownloads (spec §4.4) as a browser
// would store it: <name>.json and <name>.weights.bin in the downloads folder,
// never overwriting a file; taken names get " (1)", " (2)", ... as Chromium
// names downloads, the same suffix for both files of one save.
//
// Thread-safety: save_download may run on several threads and processes at
// once; names are claimed with link(2), which never replaces a file.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "store_internal.hpp"
#include "stowage/artifacts.hpp"

namespace stowage::browser {

// The folder browsers download into: XDG_DOWNLOAD_DIR from
// $XDG_CONFIG_HOME/user-dirs.dirs (or ~/.config/user-dirs.dirs), else
// ~/Downloads. Throws Error(kInvalidArgument) when there is no home folder.
std::filesystem::path default_downloads_folder();

// The file name prefix for a downloads:// path: "model" when empty; '/' and
// characters a file name cannot hold become '_', as browsers sanitize
// download names.
std::string download_prefix(std::string_view path);

struct DownloadedFiles {
  std::filesystem::path json;
  std::optional<std::filesystem::path> weights;  // none for a topology-only save
};

// Writes the two files (the weights file only when the artifacts have weight
// data); the JSON's manifest names "./<prefix>.weights.bin" with the prefix
// actually used. Files appear complete or not at all. With sha256, the
// weights file's SHA-256, computed as it is written, goes into the
// manifest's group ("sha256").
DownloadedFiles save_download(const std::filesystem::path& folder, const std::string& prefix,
                              const ModelArtifacts& artifacts, bool durable, bool sha256,
                              const Pace& pace);

}  // namespace stowage::browser
