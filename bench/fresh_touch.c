/* A floor of this machine: how fast a process can fault in fresh anonymous
 * memory, the cost a load pays when it receives into memory never used
 * before. Maps MIB MiB and writes one byte per 4 KiB page (a receive writes
 * every page it fills; the writes after the first fault are cache speed).
 * Usage: fresh_touch MIB [huge]   "huge" asks MADV_HUGEPAGE first.
 * Prints mib, huge (0/1) and seconds (mmap + faults + munmap). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "huge") != 0)) {
    fprintf(stderr, "usage: fresh_touch MIB [huge]\n");
    return 2;
  }
  const size_t size = (size_t)strtoull(argv[1], NULL, 10) << 20;
  const int huge = argc == 3;
  if (size == 0) {
    fprintf(stderr, "fresh_touch: MIB must be a positive number\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned char* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("fresh_touch: mmap");
    return 1;
  }
  if (huge && madvise(p, size, MADV_HUGEPAGE) != 0) {
    perror("fresh_touch: madvise(MADV_HUGEPAGE)");
    return 1;
  }
  for (size_t i = 0; i < size; i += 4096) p[i] = (unsigned char)i;
  munmap(p, size);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("mib=%zu huge=%d seconds=%.6f\n", size >> 20, huge,
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
