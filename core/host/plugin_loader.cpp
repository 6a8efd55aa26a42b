#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "file_hash_internal.hpp"
#include "host_api_internal.hpp"
#include "plugin_loader_internal.hpp"
#include "registry_internal.hpp"
#include "stowage/error.hpp"
#include "stowage/text.hpp"
#include "stowage/unique_fd.hpp"

namespace stowage::host {
namespace {

namespace fs = std::filesystem;

// The entry point's type comes from abi.h, never from a hand-written cast.
using EntrySignature = std::remove_pointer_t<stowage_entry_fn>;

// ABI 1.0's sizes: a plugin built against 1.0 or later has at least these.
constexpr size_t kMinDescSize = offsetof(stowage_plugin_desc, ops) + sizeof(void*);
constexpr size_t kMinOpsSize = offsetof(stowage_ops, remove) + sizeof(void*);

std::atomic<uint64_t> g_entry_calls{0};

// Serialises every dlopen and entry call in the process (concurrent dlopen is
// unsafe on some platforms, and the ABI promises plugins a serial entry).
std::mutex& loader_mutex() {
  static auto* m = new std::mutex;
  return *m;
}

// The no-unload list: a library handle is never closed, so nothing a plugin
// handed out can outlive its code. Leaked on purpose (no dlclose at exit).
std::vector<boost::dll::shared_library>& keep_loaded() {
  static auto* v = new std::vector<boost::dll::shared_library>;
  return *v;
}

// Each library file is loaded (and its entry called) once per process,
// whichever registry asks; a refusal is remembered the same way.
struct CacheEntry {
  dev_t dev;
  ino_t ino;
  std::shared_ptr<LoadedPlugin> plugin;
  std::optional<Error> refusal;
};
std::vector<CacheEntry>& cache() {
  static auto* v = new std::vector<CacheEntry>;
  return *v;
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

[[noreturn]] void refuse(const fs::path& library, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument,
              "plugin library " + quoted(library) + " refused: " + why);
}

std::shared_ptr<LoadedPlugin> run_entry(const boost::dll::shared_library& lib,
                                        const fs::path& library) {
  if (!lib.has(STOWAGE_ENTRY_SYMBOL)) {
    refuse(library, std::string("it does not export the entry symbol '") + STOWAGE_ENTRY_SYMBOL +
                        "' (not a stowage plugin, or built for another ABI major version)");
  }
  EntrySignature& entry = lib.get<EntrySignature>(STOWAGE_ENTRY_SYMBOL);
  const stowage_plugin_desc* desc = nullptr;
  g_entry_calls.fetch_add(1);
  try {
    desc = entry(host_api());
  } catch (...) {
    refuse(library, "its entry function threw a C++ exception across the C ABI");
  }
  return adopt_descriptor(desc, library);
}

}  // namespace

uint64_t LoadedPlugin::capabilities_of(std::string_view scheme) const noexcept {
  for (size_t i = 0; i < schemes.size() && i < scheme_capabilities.size(); ++i) {
    if (schemes[i] == scheme) return scheme_capabilities[i];
  }
  // A composed scheme a+b (cache+https) is served by the plugin of a, so it
  // has a's operations.
  if (const size_t plus = scheme.find('+'); plus != std::string_view::npos && plus > 0) {
    return capabilities_of(scheme.substr(0, plus));
  }
  return 0;
}

std::vector<std::string> LoadedPlugin::capability_names_of(uint64_t bits) {
  static const std::pair<uint64_t, const char*> kNames[] = {
      {STOWAGE_CAP_LOAD, "load"},
      {STOWAGE_CAP_SAVE, "save"},
      {STOWAGE_CAP_LIST, "list"},
      {STOWAGE_CAP_REMOVE, "remove"},
      {STOWAGE_CAP_ZERO_COPY, "zero_copy"},
      {STOWAGE_CAP_ATOMIC_SAVE, "atomic_save"},
      {STOWAGE_CAP_SINGLE_THREADED, "single_threaded"},
      {STOWAGE_CAP_STAT, "stat"},
      {STOWAGE_CAP_STREAMING_SAVE, "streaming_save"},
      {STOWAGE_CAP_STREAMING_LOAD, "streaming_load"},
  };
  std::vector<std::string> out;
  for (const auto& [bit, name] : kNames) {
    if ((bits & bit) != 0) out.emplace_back(name);
  }
  return out;
}

std::unique_lock<std::mutex> LoadedPlugin::call_lock() const {
  if (has(STOWAGE_CAP_SINGLE_THREADED)) return std::unique_lock<std::mutex>(call_mutex);
  return std::unique_lock<std::mutex>();
}

std::shared_ptr<LoadedPlugin> adopt_descriptor(const stowage_plugin_desc* desc,
                                               const fs::path& library) {
  if (desc == nullptr) {
    refuse(library, std::string("its entry function ") + STOWAGE_ENTRY_SYMBOL +
                        " returned NULL (the plugin cannot run here; set STOWAGE_LOG=1 to see "
                        "what it logged)");
  }
  // Only the first two fields are read before the size is known to cover them.
  const uint32_t size = desc->struct_size;
  if (size < offsetof(stowage_plugin_desc, abi_minor)) {
    refuse(library, "its descriptor struct_size " + std::to_string(size) + " is too small");
  }
  if (desc->abi_major != STOWAGE_ABI_MAJOR) {
    refuse(library, "it was built for plugin ABI major version " + std::to_string(desc->abi_major) +
                        "; this host speaks ABI " + std::to_string(STOWAGE_ABI_MAJOR) + "." +
                        std::to_string(STOWAGE_ABI_MINOR) +
                        " and loads only plugins of the same major version");
  }
  if (size < kMinDescSize) {
    refuse(library, "its descriptor struct_size " + std::to_string(size) +
                        " is too small: ABI 1.0 descriptors have at least " +
                        std::to_string(kMinDescSize) + " bytes");
  }
  stowage_plugin_desc d{};
  std::memcpy(&d, desc, std::min<size_t>(size, sizeof d));

  auto plugin = std::make_shared<LoadedPlugin>();
  plugin->library = library;
  plugin->abi_major = d.abi_major;
  plugin->abi_minor = d.abi_minor;
  if (d.name == nullptr || *d.name == '\0') refuse(library, "its descriptor has no name");
  plugin->name = d.name;
  plugin->version = d.version != nullptr ? d.version : "";
  if (d.scheme_count == 0 || d.schemes == nullptr) {
    refuse(library, "plugin '" + plugin->name + "' declares no schemes");
  }
  for (uint32_t i = 0; i < d.scheme_count; ++i) {
    const char* s = d.schemes[i];
    if (s == nullptr || !is_valid_scheme(s)) {
      refuse(library, "plugin '" + plugin->name + "' declares an invalid scheme '" +
                          (s != nullptr ? s : "(null)") +
                          "' (schemes are lowercase, without '://')");
    }
    plugin->schemes.emplace_back(s);
  }
  if (d.ops == nullptr) refuse(library, "plugin '" + plugin->name + "' has no ops table");
  const uint32_t ops_size = d.ops->struct_size;
  if (ops_size < kMinOpsSize) {
    refuse(library, "plugin '" + plugin->name + "' has an ops table struct_size " +
                        std::to_string(ops_size) + " that is too small: ABI 1.0 tables have " +
                        std::to_string(kMinOpsSize) + " bytes");
  }
  std::memcpy(&plugin->ops, d.ops, std::min<size_t>(ops_size, sizeof plugin->ops));
  plugin->ops.struct_size = sizeof plugin->ops;
  plugin->capabilities = d.capabilities;

  if (plugin->ops.open == nullptr || plugin->ops.close == nullptr) {
    refuse(library, "plugin '" + plugin->name + "' has no '" +
                        (plugin->ops.open == nullptr ? "open" : "close") +
                        "' function, which every plugin needs");
  }
  // A 1.0 descriptor ends before scheme_capabilities, and the clamped copy
  // left it NULL: every scheme then has the plugin-wide bits. With the
  // array, the plugin's bits are the union over its schemes (what decides
  // which functions may be called at all).
  if (d.scheme_capabilities != nullptr) {
    plugin->capabilities = d.capabilities & STOWAGE_CAP_SINGLE_THREADED;
  }
  for (uint32_t i = 0; i < d.scheme_count; ++i) {
    const uint64_t bits = d.scheme_capabilities != nullptr
                              ? (d.scheme_capabilities[i] & ~STOWAGE_CAP_SINGLE_THREADED)
                              : d.capabilities;
    plugin->scheme_capabilities.push_back(bits);
    plugin->capabilities |= bits;
  }

  struct CapFn {
    uint64_t bit;
    const char* cap;
    bool present;
  };
  const stowage_ops& ops = plugin->ops;
  const CapFn checks[] = {
      {STOWAGE_CAP_LOAD, "load", ops.load != nullptr},
      {STOWAGE_CAP_SAVE, "save", ops.save != nullptr},
      {STOWAGE_CAP_LIST, "list", ops.list != nullptr},
      {STOWAGE_CAP_REMOVE, "remove", ops.remove != nullptr},
      {STOWAGE_CAP_STAT, "stat", ops.stat != nullptr},
  };
  // Per scheme: a scheme may not claim what the ops table lacks.
  for (size_t i = 0; i < plugin->schemes.size(); ++i) {
    for (const auto& c : checks) {
      if ((plugin->scheme_capabilities[i] & c.bit) != 0 && !c.present) {
        refuse(library, "plugin '" + plugin->name + "' declares capability '" + c.cap +
                            "' but its ops table has no '" + c.cap + "' function (scheme '" +
                            plugin->schemes[i] + "')");
      }
    }
  }
  // Bits 1.1 assigned mean nothing from a 1.0 plugin: it gets the 1.0 forms.
  if (d.abi_minor < 1) {
    constexpr uint64_t kStreaming = STOWAGE_CAP_STREAMING_SAVE | STOWAGE_CAP_STREAMING_LOAD;
    plugin->capabilities &= ~kStreaming;
    for (auto& bits : plugin->scheme_capabilities) bits &= ~kStreaming;
  }
  // A streaming form of an operation the scheme does not have is a lie too.
  const std::pair<uint64_t, uint64_t> streaming[] = {
      {STOWAGE_CAP_STREAMING_SAVE, STOWAGE_CAP_SAVE},
      {STOWAGE_CAP_STREAMING_LOAD, STOWAGE_CAP_LOAD},
  };
  for (size_t i = 0; i < plugin->schemes.size(); ++i) {
    for (const auto& [form, op] : streaming) {
      const uint64_t bits = plugin->scheme_capabilities[i];
      if ((bits & form) != 0 && (bits & op) == 0) {
        refuse(library, "plugin '" + plugin->name + "' declares capability '" +
                            LoadedPlugin::capability_names_of(form).front() + "' but not '" +
                            LoadedPlugin::capability_names_of(op).front() + "' (scheme '" +
                            plugin->schemes[i] + "')");
      }
    }
  }
  // The capability bits are the truth: an undeclared function is never called.
  if (!plugin->has(STOWAGE_CAP_LOAD)) plugin->ops.load = nullptr;
  if (!plugin->has(STOWAGE_CAP_SAVE)) plugin->ops.save = nullptr;
  if (!plugin->has(STOWAGE_CAP_LIST)) plugin->ops.list = nullptr;
  if (!plugin->has(STOWAGE_CAP_REMOVE)) plugin->ops.remove = nullptr;
  if (!plugin->has(STOWAGE_CAP_STAT)) plugin->ops.stat = nullptr;
  return plugin;
}

void check_against_manifest(const LoadedPlugin& plugin, const Manifest& manifest) {
  if (plugin.name != manifest.name) {
    refuse(plugin.library, "it calls itself '" + plugin.name + "' but its manifest " +
                               quoted(manifest.file) + " names it '" + manifest.name + "'");
  }
  std::vector<std::string> a = plugin.schemes, b = manifest.schemes;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) {
    refuse(plugin.library, "plugin '" + plugin.name + "' serves schemes [" + join(plugin.schemes) +
                               "] but its manifest " + quoted(manifest.file) + " lists [" +
                               join(manifest.schemes) + "]");
  }
  if (plugin.abi_major != manifest.abi_major) {
    refuse(plugin.library, "plugin '" + plugin.name + "' speaks ABI " +
                               std::to_string(plugin.abi_major) + " but its manifest " +
                               quoted(manifest.file) + " says " +
                               std::to_string(manifest.abi_major));
  }
}

std::shared_ptr<LoadedPlugin> load_plugin(const LoadRequest& request) {
  const fs::path& library = request.library;
  if (request.manifest != nullptr && request.manifest->abi_major != STOWAGE_ABI_MAJOR) {
    throw Error(ErrorCode::kInvalidArgument,
                "plugin '" + request.manifest->name + "' refused: its manifest " +
                    quoted(request.manifest->file) + " declares plugin ABI " +
                    std::to_string(request.manifest->abi_major) + "." +
                    std::to_string(request.manifest->abi_minor) + "; this host speaks ABI " +
                    std::to_string(STOWAGE_ABI_MAJOR) + "." + std::to_string(STOWAGE_ABI_MINOR) +
                    " (the library was not loaded)");
  }
  std::lock_guard<std::mutex> lock(loader_mutex());

  UniqueFd fd(::open(library.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    std::string why = "cannot open plugin library " + quoted(library) + ": " + std::strerror(err);
    if (request.manifest != nullptr) why += " (named by " + quoted(request.manifest->file) + ")";
    throw Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied, why);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw Error(ErrorCode::kInvalidArgument,
                "plugin library " + quoted(library) + " is not a regular file");
  }

  std::optional<std::string> actual;
  if (!request.sha256_pins.empty()) {
    actual = sha256_hex_of_fd(fd.get(), library.string());
    for (const auto& pin : request.sha256_pins) {
      if (pin != *actual) {
        throw Error(ErrorCode::kPermissionDenied, "plugin library " + quoted(library) +
                                                      " does not match its SHA-256 pin: expected " +
                                                      pin + ", actual " + *actual +
                                                      " (the library was not loaded)");
      }
    }
  }

  std::shared_ptr<LoadedPlugin> plugin;
  for (const auto& c : cache()) {
    if (c.dev == st.st_dev && c.ino == st.st_ino) {
      if (c.refusal) throw *c.refusal;
      plugin = c.plugin;
      break;
    }
  }
  if (!plugin) {
    // With a pin, load the descriptor that was hashed, not the path again.
    fs::path to_load = actual ? fs::path("/proc/self/fd/" + std::to_string(fd.get())) : library;
    std::error_code ec;
    boost::dll::shared_library lib(
        to_load, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
    if (ec || !lib.is_loaded()) {
      const char* why = ::dlerror();
      throw Error(ErrorCode::kInvalidArgument, "cannot load plugin library " + quoted(library) +
                                                   ": " + (why != nullptr ? why : ec.message()));
    }
    keep_loaded().push_back(lib);
    try {
      plugin = run_entry(lib, library);
      plugin->sha256 = actual;
      cache().push_back({st.st_dev, st.st_ino, plugin, std::nullopt});
    } catch (const Error& e) {
      cache().push_back({st.st_dev, st.st_ino, nullptr, e});
      throw;
    }
  }
  if (request.manifest != nullptr) check_against_manifest(*plugin, *request.manifest);
  return plugin;
}

uint64_t entry_function_calls() noexcept { return g_entry_calls.load(); }

}  // namespace stowage::host
