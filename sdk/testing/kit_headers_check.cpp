// Compiled with only sdk/include and the format library's headers on the
// include path (sdk/testing/CMakeLists.txt): the kit must not need the host.
#include "stowage/blob_store.hpp"
#include "stowage/plugin.hpp"

// A plugin's list() hands back the format library's ListedModel.
static_assert(std::is_same_v<decltype(std::declval<stowage::plugin::Handler&>().list(
                                 std::declval<stowage::plugin::Call&>())),
                             std::vector<stowage::ListedModel>>);
