// The defaults of IOHandler: an operation a handler does not provide fails
// the way TF.js reports a handler without that method.
#include "stowage/handler.hpp"

#include "stowage/error.hpp"

namespace stowage {

SaveResult IOHandler::save(const ModelArtifacts&, const CallContext&) {
  throw Error(ErrorCode::kUnimplemented, "Saving cannot proceed because the IOHandler for '" +
                                             url() +
                                             "' does not have the `save` attribute defined.");
}

ModelArtifacts IOHandler::load(const CallContext&) {
  throw Error(ErrorCode::kUnimplemented,
              "Cannot proceed with model loading because the IOHandler for '" + url() +
                  "' does not have the `load` method implemented.");
}

std::vector<ListedModel> IOHandler::list(const CallContext&) {
  throw Error(ErrorCode::kUnimplemented, "Cannot list models because the IOHandler for '" + url() +
                                             "' does not have the `list` method implemented.");
}

ModelArtifactsInfo IOHandler::remove(const CallContext&) {
  throw Error(ErrorCode::kUnimplemented, "Cannot remove the model because the IOHandler for '" +
                                             url() +
                                             "' does not have the `remove` method implemented.");
}

ModelStat IOHandler::stat(const CallContext&) {
  throw Error(ErrorCode::kUnimplemented, "Cannot stat the model because the IOHandler for '" +
                                             url() + "' does not have a `stat` method.");
}

}  // namespace stowage
