/* The one definition of "touch every byte" shared by every benchmark
 * variant: read every byte, as little-endian 64-bit words summed modulo
 * 2^64 (a last partial word is zero-padded). The sum is printed so the
 * variants can be checked against each other and the reads are not
 * optimised away. Thread-safety: pure function. Ownership: borrows bytes. */
#ifndef STOWAGE_BENCH_TOUCH_H_
#define STOWAGE_BENCH_TOUCH_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t stowage_touch_sum(const unsigned char* bytes, size_t size) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    memcpy(&word, bytes + i, 8); /* little-endian machines only, like TF.js */
    sum += word;
  }
  if (i < size) {
    uint64_t word = 0;
    memcpy(&word, bytes + i, size - i);
    sum += word;
  }
  return sum;
}

#endif /* STOWAGE_BENCH_TOUCH_H_ */
