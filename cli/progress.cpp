// Progress bars on a terminal and Ctrl-C as cancellation.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "commands_internal.hpp"

namespace stowage::cli {
namespace {

std::atomic<bool> g_interrupted{false};

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

struct Progress::State {
  bool enabled = false;
  std::string label;
  std::mutex mutex;
  bool drawn = false;
  bool closed = false;  // no drawing after finish(), even for late reports
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw{};

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
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex);
    closed = true;
    if (drawn) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
      drawn = false;
    }
  }
};

Progress::Progress(const CommonOptions& common, std::string label)
    : state_(std::make_shared<State>()) {
  state_->enabled = !common.json && !common.quiet && isatty(STDERR_FILENO) == 1;
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

void Progress::finish() { state_->clear(); }

}  // namespace stowage::cli
