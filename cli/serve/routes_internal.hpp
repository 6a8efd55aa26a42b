// URL layout of `stowage serve` (docs/serve.md) and the checks on model
// names, which come from the network and are never trusted.
//
//   /models                         GET: list
//   /models/<name>                  POST, PUT: upload; DELETE: remove
//   /models/<name>/model.json       GET, HEAD: model.json (also accepted
//                                   for POST, PUT and DELETE)
//   /models/<name>/<weights file>   GET, HEAD: a weights file
//   /healthz, /readyz, /metrics     GET, HEAD: for operators (server.cpp)
//   anything else                   the static folder, when there is one
//
// A name is one or more '/'-separated segments.
// Thread-safety: free functions without state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace stowage::serve {

inline constexpr size_t kMaxModelNameBytes = 200;

// Throws Error(kInvalidArgument) saying what is wrong with name: empty,
// absolute, longer than kMaxModelNameBytes, not UTF-8, a segment that is
// empty, ".", "..", hidden (".x"), "model.json", or holds a control
// character or one of \ ? # % ".
void check_model_name(std::string_view name);
// The same rules for one segment (a weights file or a static file name).
void check_segment(std::string_view segment, std::string_view what);

// %XX decoding of one path segment. Throws Error(kInvalidArgument) for a
// bad escape or an encoded NUL.
std::string percent_decode(std::string_view text);

struct Route {
  enum class Kind {
    kList,       // /models
    kModel,      // a model as a whole (upload, remove)
    kModelJson,  // its model.json
    kModelFile,  // one of its weights files
    kStatic,     // outside /models
    kNoFile,     // /models/<name> read: nothing to read there
    kHealth,     // /healthz: the process is alive
    kReady,      // /readyz: the store answers
    kMetrics,    // /metrics
  };
  Kind kind = Kind::kStatic;
  std::string name;               // the model, for kModel, kModelJson, kModelFile
  std::string file;               // the weights file, for kModelFile
  std::vector<std::string> path;  // decoded segments, for kStatic
};

// Routes a request target ("/models/a/model.json?x=1"; the query is
// ignored). `whole_model` selects the reading for POST, PUT and DELETE.
// Throws Error(kInvalidArgument) for a bad name or encoding.
Route route_target(std::string_view target, bool whole_model);

// The path part of a target, without query or fragment, for logs.
std::string_view target_path(std::string_view target);

}  // namespace stowage::serve
