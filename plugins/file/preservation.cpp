// Keeping a user's other files through a save of the file:// plugin
// (preservation_internal.hpp).
#include <set>

#include "preservation_internal.hpp"
#include "stowage/blob_store.hpp"

namespace stowage::file {

namespace {

// Takes out of `owned` the content-addressed weight files that another
// model file in the folder names (they are shared, so they stay, as the
// adapter's removal keeps them on other stores).
void shared_with_other_models(int old, const std::string& folder, const std::string& model_name,
                              std::set<std::string>& owned) {
  for (const std::string& name : folder_entries(old, folder)) {
    if (name == model_name || name.size() <= 5 || !name.ends_with(".json")) continue;
    Fd fd(::openat(old, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) {
      continue;
    }
    std::string text(static_cast<size_t>(st.st_size), '\0');
    if (::pread(fd.get(), text.data(), text.size(), 0) != st.st_size) continue;
    try {
      ModelArtifacts other = parse_model_json(text, join(folder, name));
      for (const WeightGroup& group : other.weights_manifest.value_or(WeightsManifest{})) {
        for (std::string_view p : group.paths) {
          while (p.starts_with("./")) p.remove_prefix(2);
          if (!content_address_prefix(p).empty()) owned.erase(std::string(p));
        }
      }
    } catch (const Error&) {
      // Not a model file: it names nothing.
    }
  }
}

// True when the subfolder `rel` of the folder holds nothing but weight
// files of the model (paths relative to the model's folder).
bool only_weights(int dir, const std::string& rel, const std::set<std::string>& paths,
                  const std::string& folder, int depth = 0) {
  Fd sub(::openat(dir, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub || depth > 32) return false;
  for (const std::string& name : folder_entries(sub.get(), join(folder, rel))) {
    struct stat st;
    if (::fstatat(sub.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    const std::string path = rel + "/" + name;
    if (S_ISDIR(st.st_mode) ? !only_weights(dir, path, paths, folder, depth + 1)
                            : paths.count(path) == 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> foreign_files_of(int old, const std::string& folder,
                                          const std::string& model_name,
                                          std::optional<std::string_view> model_json) {
  std::set<std::string> owned = {model_name};  // names in the folder
  std::set<std::string> owned_paths;           // weight paths below subfolders
  if (model_json) {
    try {
      ModelArtifacts old_model = parse_model_json(*model_json, join(folder, model_name));
      for (const WeightGroup& group : old_model.weights_manifest.value_or(WeightsManifest{})) {
        for (std::string_view p : group.paths) {
          while (p.starts_with("./")) p.remove_prefix(2);
          owned.emplace(p.substr(0, p.find('/')));
          if (p.find('/') != std::string_view::npos) owned_paths.emplace(p);
        }
      }
    } catch (const Error&) {
      // An unreadable model.json names nothing: everything else is kept.
    }
  }
  shared_with_other_models(old, folder, model_name, owned);
  std::vector<std::string> foreign;
  for (std::string& name : folder_entries(old, folder)) {
    if (is_temp_name(name)) continue;
    struct stat st;
    if (::fstatat(old, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (owned.count(name) != 0 &&
        (!S_ISDIR(st.st_mode) || only_weights(old, name, owned_paths, folder))) {
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      throw Error(ErrorCode::kAlreadyExists,
                  "Cannot save a model into " + folder + ": it holds the folder " +
                      join(folder, name) +
                      ", which is not part of the model there. A save replaces the whole "
                      "folder at once and does not move other folders; save into a folder of "
                      "its own.");
    }
    foreign.push_back(std::move(name));
  }
  return foreign;
}

// Carries a foreign file over into the new folder by a hard link (the
// same file, not a copy). A name the new model uses stays the model's.
void adopt_foreign_file(int old, int temp, const std::string& name, const std::string& folder) {
  if (::linkat(old, name.c_str(), temp, name.c_str(), 0) == 0) return;
  if (errno == EEXIST) {
    struct stat kept, there;
    if (::fstatat(temp, name.c_str(), &kept, AT_SYMLINK_NOFOLLOW) == 0 &&
        ::fstatat(old, name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 &&
        kept.st_ino == there.st_ino && kept.st_dev == there.st_dev) {
      return;  // a content-addressed file the new model kept
    }
    plugin::log(2, "save " + folder + ": the new model replaces the file " + join(folder, name));
    return;
  }
  if (errno == ENOENT) return;  // deleted meanwhile
  throw errno_error(errno,
                    "Cannot keep " + join(folder, name) + " in the new folder (hard link refused)");
}

}  // namespace stowage::file
