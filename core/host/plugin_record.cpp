// Plugin records and sources (plugin_record_internal.hpp).
#include "plugin_record_internal.hpp"

namespace stowage::host {

namespace {

struct SourceName {
  PluginSource source;
  std::string_view name;
};
constexpr SourceName kSourceNames[] = {
    {PluginSource::kApi, "api"},
    {PluginSource::kConfig, "config"},
    {PluginSource::kPluginPath, "STOWAGE_PLUGIN_PATH"},
    {PluginSource::kDefault, "default"},
};

std::shared_ptr<PluginRecord> record_from_manifest(Manifest m, PluginSource source) {
  auto r = std::make_shared<PluginRecord>();
  r->info.name = m.name;
  r->info.version = m.version;
  r->info.manifest = m.file;
  r->info.library = m.library;
  r->info.schemes = m.schemes;
  r->info.commands = m.commands;
  r->info.abi_major = m.abi_major;
  r->info.abi_minor = m.abi_minor;
  r->source = source;
  r->parsed = std::move(m);
  return r;
}

std::shared_ptr<PluginRecord> record_from_plugin(std::shared_ptr<const LoadedPlugin> p,
                                                 PluginSource source) {
  auto r = std::make_shared<PluginRecord>();
  r->info.name = p->name;
  r->info.version = p->version;
  r->info.library = p->library;
  r->info.schemes = p->schemes;
  r->info.abi_major = p->abi_major;
  r->info.abi_minor = p->abi_minor;
  r->source = source;
  r->loaded = std::move(p);
  return r;
}

}  // namespace

std::string_view source_name(PluginSource source) noexcept {
  for (const auto& s : kSourceNames) {
    if (s.source == source) return s.name;
  }
  return {};
}

std::optional<PluginSource> source_named(std::string_view name) noexcept {
  for (const auto& s : kSourceNames) {
    if (s.name == name) return s.source;
  }
  return std::nullopt;
}

std::vector<std::string> pins_for(const std::optional<std::string>& entry_pin,
                                  const std::optional<std::string>& name_pin) {
  std::vector<std::string> pins;
  if (entry_pin) pins.push_back(*entry_pin);
  if (name_pin) pins.push_back(*name_pin);
  return pins;
}

std::shared_ptr<PluginRecord> record_for(const std::filesystem::path& file, PluginSource source,
                                         const std::optional<std::string>& pin,
                                         const NamePinLookup& name_pin) {
  std::shared_ptr<PluginRecord> rec;
  if (file.extension() == ".json") {
    rec = record_from_manifest(read_manifest(file), source);
    rec->entry_pin = pin;
  } else {
    LoadRequest request;
    request.library = file;
    request.sha256_pins = pins_for(pin, std::nullopt);
    auto plugin = load_plugin(request);
    // Only the loaded library tells its name, and with it the config's pin
    // for that name: the file is checked once more, against every pin (the
    // plugin itself is loaded already and is not loaded again).
    const std::optional<std::string> by_name = name_pin ? name_pin(plugin->name) : std::nullopt;
    if (by_name) {
      request.sha256_pins = pins_for(pin, by_name);
      load_plugin(request);
    }
    rec = record_from_plugin(std::move(plugin), source);
  }
  return rec;
}

std::shared_ptr<PluginRecord> broken_record(const std::filesystem::path& manifest,
                                            PluginSource source, Error why) {
  auto r = std::make_shared<PluginRecord>();
  r->info.name = plugin_name_from_manifest_file(manifest);
  r->info.manifest = manifest;
  r->source = source;
  r->broken = std::move(why);
  return r;
}

}  // namespace stowage::host
