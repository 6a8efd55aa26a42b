// Progress bars on a terminal and Ctrl-C as cancellation.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "commands_internal.hpp"
#include "stowage/registry.hpp"

namespace stowage::cli {
namespace {

std::atomic<bool> g_interrupted{false};

// One writer on stderr at a time (bars and retry notices come from several
// threads), and whether a bar is on the current line.
std::mutex g_stderr_mu;
bool g_bar_shown = false;

// STOWAGE_PROGRESS: "always" draws on stderr even when it is no terminal
// (logs, tests), "never" not even on one; otherwise only on a terminal.
bool stderr_wanted() {
  const char* mode = std::getenv("STOWAGE_PROGRESS");
  const std::string_view m = mode != nullptr ? mode : "";
  if (m == "always") return true;
  if (m == "never") return false;
  return isatty(STDERR_FILENO) == 1;
}

extern "C" void on_interrupt(int signal_number) {
  // The first signal asks the running call to stop cleanly (a plugin then
  // leaves no partial model behind); a second one ends the process.
  g_interrupted.store(true);
  std::signal(signal_number, SIG_DFL);
}

int terminal_columns() {
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 40) return size.ws_col;
  return 80;
}

std::string short_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

bool interrupted() noexcept { return g_interrupted.load(); }

void announce_retries(const CommonOptions& common) {
  if (common.quiet || !stderr_wanted()) return;
  Registry::global().set_retry_observer([](const RetryNotice& n) {
    const std::string line = "retrying " + n.method + " " + n.url + " (" +
                             std::to_string(n.attempt) + "/" + std::to_string(n.max_attempts) +
                             ") after " + n.reason;
    std::lock_guard<std::mutex> lock(g_stderr_mu);
    // Over the bar, which the next report draws again below it.
    std::fprintf(stderr, "%s%s\n", g_bar_shown ? "\r\033[K" : "", line.c_str());
    g_bar_shown = false;
    std::fflush(stderr);
  });
}

struct Progress::State {
  bool enabled = false;
  std::string label;
  std::mutex mutex;
  bool drawn = false;
  bool closed = false;  // no drawing after finish(), even for late reports
  bool saving = false;  // a copy's save has reported: its load is no longer shown
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw{};

  // A copy's phases: the load, then the save. A streaming copy runs both at
  // once; the save, never ahead of the load, is the one shown then.
  void phase(TransferPhase phase, uint64_t done, uint64_t total) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (phase == TransferPhase::kLoading && saving) return;
      const char* name = phase == TransferPhase::kLoading ? "loading" : "saving";
      if (phase == TransferPhase::kSaving && total > 0) saving = true;
      if (label != name && total > 0) {
        // A new phase: its own bar, drawn at once, its own rate.
        label = name;
        drawn = false;
        start = std::chrono::steady_clock::now();
      }
    }
    draw(done, total);
  }

  void draw(uint64_t done, uint64_t total) {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed || total == 0) return;
    const auto now = std::chrono::steady_clock::now();
    // Ten redraws a second at most; finish() erases the bar, so the last
    // state need not be drawn.
    if (drawn && now - last_draw < std::chrono::milliseconds(100)) return;
    last_draw = now;
    drawn = true;

    const double seconds = std::chrono::duration<double>(now - start).count();
    const double fraction = std::min(1.0, double(done) / double(total));
    // A fixed-width tail keeps the bar from changing length as numbers grow.
    char tail[96];
    const std::string rate =
        seconds > 0.5 ? short_bytes(uint64_t(double(done) / seconds)) + "/s" : std::string();
    std::snprintf(tail, sizeof tail, " %3d%% %10s / %-10s %12s", int(fraction * 100),
                  short_bytes(done).c_str(), short_bytes(total).c_str(), rate.c_str());

    const int columns = terminal_columns() - 1;
    std::string line = label;
    const int bar_width = columns - int(line.size()) - int(std::strlen(tail)) - 3;
    if (bar_width >= 10) {
      const int filled = int(fraction * bar_width);
      line += " [" + std::string(filled, '#') + std::string(bar_width - filled, ' ') + "]";
    }
    line += tail;
    if (int(line.size()) > columns) line.resize(columns);
    std::lock_guard<std::mutex> out(g_stderr_mu);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    g_bar_shown = true;
    std::fflush(stderr);
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex);
    closed = true;
    if (drawn) {
      std::lock_guard<std::mutex> out(g_stderr_mu);
      if (g_bar_shown) std::fprintf(stderr, "\r\033[K");
      g_bar_shown = false;
      std::fflush(stderr);
      drawn = false;
    }
  }
};

Progress::Progress(const CommonOptions& common, std::string label)
    : state_(std::make_shared<State>()) {
  state_->enabled = !common.json && !common.quiet && stderr_wanted();
  state_->label = std::move(label);
}

Progress::~Progress() { finish(); }

CallContext Progress::context() {
  CallContext call;
  call.is_cancelled = [] { return interrupted(); };
  if (state_->enabled) {
    // The state outlives the call even if a plugin thread reports late.
    call.on_progress = [state = state_](uint64_t done, uint64_t total) {
      state->draw(done, total);
    };
  }
  return call;
}

std::function<void(TransferPhase, uint64_t, uint64_t)> Progress::phases() {
  if (!state_->enabled) return [](TransferPhase, uint64_t, uint64_t) {};
  return [state = state_](TransferPhase phase, uint64_t done, uint64_t total) {
    state->phase(phase, done, total);
  };
}

void Progress::finish() { state_->clear(); }

}  // namespace stowage::cli
