/* The peak resident set size of this benchmark process, in KiB, for every
 * bench program that prints one. VmHWM (/proc/self/status) counts from the
 * exec; getrusage's ru_maxrss, the fallback, also keeps the peak of the
 * process this one was forked from, so a driver holding a model would show
 * up in every row. Thread-safety: reads the kernel's counters only.
 * Ownership: none. */
#ifndef STOWAGE_BENCH_PEAK_RSS_H_
#define STOWAGE_BENCH_PEAK_RSS_H_

#include <stdio.h>
#include <sys/resource.h>

static inline long stowage_peak_rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f != NULL) {
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
      if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    if (kib >= 0) return kib;
  }
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

#endif /* STOWAGE_BENCH_PEAK_RSS_H_ */
