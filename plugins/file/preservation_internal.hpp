// Keeping a user's other files through a save of the file:// plugin. A save
// replaces the model's whole folder at once (file_plugin.cpp, HOW A SAVE IS
// ATOMIC); the files in it that the model there does not own are hard-linked
// into the new folder first, so nothing of the user's is lost. A model owns
// its model file and the weight files its manifest names, except
// content-addressed ones another model file in the folder names too.
// Thread-safety: stateless functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "file_internal.hpp"

#pragma GCC visibility push(hidden)

namespace stowage::file {

// The entries of the open folder `old` (the model's folder, `folder` in
// messages) that are not part of the model whose model file is model_name
// with the text model_json (nullopt when it could not be read; a text that
// does not parse names nothing either), nor stowage temporary folders. A
// subfolder holding only the model's weight files is the model's. Throws
// Error(kAlreadyExists) naming the first other subfolder: a save does not
// move folders.
std::vector<std::string> foreign_files_of(int old, const std::string& folder,
                                          const std::string& model_name,
                                          std::optional<std::string_view> model_json);

// Hard-links the file `name` of folder `old` into the new folder `temp`.
// When the new model uses the name already it stays the model's (logged
// unless it is the same file); a file gone meanwhile is skipped. Throws
// naming the file when the link is refused.
void adopt_foreign_file(int old, int temp, const std::string& name, const std::string& folder);

}  // namespace stowage::file

#pragma GCC visibility pop
