// Command-line mistakes as one `stowage: error:` line, with the command or
// option the user probably meant.
#include <algorithm>

#include "commands_internal.hpp"

namespace stowage::cli {
namespace {

// Optimal string alignment distance (Levenshtein plus swapped neighbours:
// "lsit" is one step from "list").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::vector<CLI::App*> subcommands_of(CLI::App& app) {
  return app.get_subcommands([](CLI::App*) { return true; });
}

CLI::App* find_subcommand(CLI::App& app, std::string_view name) {
  for (CLI::App* sub : subcommands_of(app)) {
    if (sub->check_name(std::string(name))) return sub;
  }
  return nullptr;
}

// " (did you mean 'copy'?)" for the nearest command (by name or alias), or "".
std::string command_hint(CLI::App& app, std::string_view word) {
  std::vector<std::pair<std::string, std::string>> names;  // spelling, command
  for (CLI::App* sub : subcommands_of(app)) {
    names.emplace_back(sub->get_name(), sub->get_name());
    for (const std::string& alias : sub->get_aliases()) names.emplace_back(alias, sub->get_name());
  }
  std::vector<std::string> spellings;
  for (const auto& [spelling, command] : names) spellings.push_back(spelling);
  const std::string best = closest_word(word, spellings);
  if (best.empty()) return "";
  for (const auto& [spelling, command] : names) {
    if (spelling == best) return " (did you mean '" + command + "'?)";
  }
  return "";
}

// The option names a command takes: "--json", "-q", ...
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::Option* option : app.get_options([](const CLI::Option*) { return true; })) {
    for (const std::string& l : option->get_lnames()) out.push_back("--" + l);
    for (const std::string& s : option->get_snames()) out.push_back("-" + s);
  }
  return out;
}

}  // namespace

std::string closest_word(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = 0;
  // Closer than a third of the word: "cpy" -> "copy", but "x" -> nothing.
  const size_t limit = std::max<size_t>(1, (word.size() + 1) / 3);
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d <= limit && (best.empty() || d < best_distance)) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string usage_error_text(CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  // Walk the words as the parser does, as far as the command is concerned:
  // options of the top level (only --config takes a value there), then one
  // command name per level that has commands.
  CLI::App* level = &app;
  std::string path = app.get_name();
  // A plugin's program is named after the command that runs it ("stowage
  // browser"), so its top level is already a command of stowage's.
  const bool plugin_program = path.find(' ') != std::string::npos;
  bool found_command = plugin_program;
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--") break;
    if (word.starts_with("-")) {
      if (level == &app && !plugin_program && word == "--config") ++i;
      continue;
    }
    if (subcommands_of(*level).empty()) break;
    CLI::App* sub = find_subcommand(*level, word);
    if (sub == nullptr) {
      return "unknown command '" + std::string(word) + "'" +
             (found_command ? " for '" + path + "'" : std::string()) + command_hint(*level, word) +
             "; '" + path + " --help' lists the commands";
    }
    level = sub;
    path += " " + sub->get_name();
    found_command = true;
  }

  std::string message = one_line(error.what());
  if (!found_command) return "a command is required; '" + path + " --help' lists the commands";
  if (!subcommands_of(*level).empty() && level->get_subcommands().empty() &&
      message.find("subcommand") != std::string::npos) {
    return "'" + path + "' needs a command; '" + path + " --help' lists them";
  }
  // An option the command does not take: name the nearest one it does.
  constexpr std::string_view kExtras[] = {"The following argument was not expected: ",
                                          "The following arguments were not expected: "};
  for (std::string_view prefix : kExtras) {
    if (!message.starts_with(prefix)) continue;
    std::string first = message.substr(prefix.size());
    first = first.substr(0, first.find(' '));
    if (first.starts_with("-")) {
      const std::string name = first.substr(0, first.find('='));
      const std::string best = closest_word(name, option_names(*level));
      if (!best.empty()) message += " (did you mean '" + best + "'?)";
    }
  }
  return message + "; see '" + path + " --help'";
}

}  // namespace stowage::cli
