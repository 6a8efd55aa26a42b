// What the conformance cases share: the plugin under test and its registry,
// fresh URLs under the root, the golden models, and checks whose failure
// message names the promise of abi.h that was broken.
// Thread-safety: target() is set up by run() before any case runs and is
// read-only afterwards; the helpers may be called from several threads
// except where a comment says otherwise (doctest assertions: main thread).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stowage/artifacts.hpp"
#include "stowage/error.hpp"
#include "stowage/handler.hpp"
#include "stowage/registry.hpp"

namespace stowage::conformance {

// Deviations a plugin may declare (--deviation), instead of the suite
// special-casing plugin names.
// "dotdot_resolves": URLs are filesystem paths; ".." segments are resolved
//   as a path resolver does (file://), so the root is no boundary for them.
inline constexpr const char* kDeviationDotdotResolves = "dotdot_resolves";
// "refuses_weights_only": a model without modelTopology cannot be stored
//   (TF.js's localstorage and indexeddb); save refuses it with
//   INVALID_ARGUMENT instead of round-tripping it.
inline constexpr const char* kDeviationRefusesWeightsOnly = "refuses_weights_only";

struct Target {
  std::string plugin;  // --plugin as given
  std::string scheme;
  std::string root;
  std::string options = "{}";
  std::set<std::string> deviations;
  std::filesystem::path fixtures;
  std::filesystem::path shim;  // libstowage_conformance_shim.so

  std::unique_ptr<Registry> registry;
  PluginInfo info;                        // the plugin once loaded
  std::optional<std::string> load_error;  // why it did not load
  std::string run_root;                   // root/<unique run folder>

  // The scheme under test's own capabilities when the plugin declares them
  // per scheme (ABI 1.1), else the plugin's; what gates the groups.
  const std::vector<std::string>& capabilities() const;
  bool has(const std::string& capability) const;
  bool deviates(const std::string& name) const { return deviations.count(name) != 0; }
};

Target& target();

// ---- URLs ---------------------------------------------------------------

// base + "/" + name, without doubling a '/' or a '#' that ends base.
std::string child(const std::string& base, const std::string& name);
// A URL nothing has used yet: run_root/<what>-<n>.
std::string fresh(const std::string& what);
// A handler for url with the target's options, from the target's registry.
std::unique_ptr<IOHandler> open(const std::string& url);

// ---- Promise checks -------------------------------------------------------

// Fails the current case: "BROKEN PROMISE: <promise>\n  <detail>".
[[noreturn]] void broken(const std::string& promise, const std::string& detail);
// Records a failure without stopping the case.
void broken_check(const std::string& promise, const std::string& detail);

// "not found: <message>"; for any exception, what a caller sees of it.
std::string describe(const std::exception& e);
std::string describe(std::exception_ptr e);

// Runs f; a failure breaks `promise` (an exception that is not a
// stowage::Error crossed the C ABI, which is a promise of its own).
template <typename F>
auto must(const std::string& promise, F&& f) -> decltype(f());

// Runs f, which must throw a stowage::Error with one of `codes`.
template <typename F>
Error must_fail(const std::string& promise, std::initializer_list<ErrorCode> codes, F&& f);

// Runs f, which may succeed (nullopt) or throw a stowage::Error with one of
// `codes` (returned); anything else breaks the promise.
template <typename F>
std::optional<Error> may_fail(const std::string& promise, std::initializer_list<ErrorCode> codes,
                              F&& f);

// ---- Models ---------------------------------------------------------------

struct Golden {
  std::string id;
  std::string description;
  ModelArtifacts artifacts;  // one Buffer per weight file, as a file load gives
};
// The golden models made by TensorFlow.js (fixtures/index.json), read once.
// REQUIRES: main thread on first call.
const std::vector<Golden>& goldens();

// A small layers model: `floats` float32 values from `seed`, cut into
// `pieces` buffers (tensors span buffer boundaries), plus an int32 scalar.
ModelArtifacts small_model(uint32_t seed, size_t floats = 96, size_t pieces = 3);
// The concatenated weight bytes.
std::string weight_bytes(const ModelArtifacts& artifacts);
// Every weight spec, from the manifest when there is one.
std::vector<WeightSpec> all_specs(const ModelArtifacts& artifacts);
// Empty when `loaded` carries exactly what `saved` held (every JSON field
// byte for byte, the weight specs and the weight bytes); else the first
// difference, in words.
std::string difference(const ModelArtifacts& saved, const ModelArtifacts& loaded);
// Saves at url, loads it back and requires the same model.
void round_trip(const std::string& url, const ModelArtifacts& model, const std::string& promise);

// ---- Small things ---------------------------------------------------------

std::string code_name(ErrorCode code);
// Every model at or under url, from the plugin's list.
std::vector<ListedModel> list_models_at(const std::string& url);
// A temporary folder removed when the object goes.
struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

// ---- Templates --------------------------------------------------------------

namespace detail {
std::string codes_text(std::initializer_list<ErrorCode> codes);
bool one_of(ErrorCode code, std::initializer_list<ErrorCode> codes);
}  // namespace detail

template <typename F>
auto must(const std::string& promise, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const doctest::detail::TestFailureException&) {
    throw;
  } catch (const Error& e) {
    broken(promise, "it failed with " + describe(e));
  } catch (const std::exception& e) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw " + describe(e));
  } catch (...) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw an exception of unknown type");
  }
}

template <typename F>
Error must_fail(const std::string& promise, std::initializer_list<ErrorCode> codes, F&& f) {
  try {
    f();
  } catch (const doctest::detail::TestFailureException&) {
    throw;
  } catch (const Error& e) {
    if (detail::one_of(e.code(), codes)) return e;
    broken(promise, "expected " + detail::codes_text(codes) + ", got " + describe(e));
  } catch (const std::exception& e) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw " + describe(e));
  } catch (...) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw an exception of unknown type");
  }
  broken(promise, "expected " + detail::codes_text(codes) + ", but the call succeeded");
}

template <typename F>
std::optional<Error> may_fail(const std::string& promise, std::initializer_list<ErrorCode> codes,
                              F&& f) {
  try {
    f();
    return std::nullopt;
  } catch (const doctest::detail::TestFailureException&) {
    throw;
  } catch (const Error& e) {
    if (detail::one_of(e.code(), codes)) return e;
    broken(promise, "expected success or " + detail::codes_text(codes) + ", got " + describe(e));
  } catch (const std::exception& e) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw " + describe(e));
  } catch (...) {
    broken("no C++ exception crosses the C ABI (abi.h: errors are statuses)",
           "while checking \"" + promise + "\" it threw an exception of unknown type");
  }
}

}  // namespace stowage::conformance
