/* How fast this machine moves MIB MiB from a loopback TCP socket into memory
 * a process can hand out, by destination. A child process sends FILE with
 * sendfile (page cache, as `stowage serve` does); the parent receives it in
 * 4 MiB bodies (one per shard) into:
 *   anon      a fresh anonymous mapping per body (faulted in by the receive)
 *   huge      the same with MADV_HUGEPAGE on a 2 MiB-aligned mapping
 *   populate  a fresh mapping with MAP_POPULATE (faulted in before the receive)
 *   memfd     a 256 KiB buffer reused for every read, each read written into
 *             a memfd per body that is then mapped (curl -> /dev/shm's path)
 *   splice    socket -> pipe -> memfd with splice(2), no user-space copy
 * Usage: recv_into MODE FILE   prints mode, bytes and seconds (receive only). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BODY (4u << 20)
#define HUGE_PAGE (2u << 20)
#define SCRATCH (256u << 10)

static void die(const char* what) {
  perror(what);
  exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void recv_all(int s, unsigned char* p, size_t n) {
  while (n > 0) {
    ssize_t got = recv(s, p, n, 0);
    if (got <= 0) die("recv");
    p += got;
    n -= (size_t)got;
  }
}

static void* receive_body(const char* mode, int s, size_t n, int pipes[2]) {
  if (strcmp(mode, "anon") == 0 || strcmp(mode, "populate") == 0) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (mode[0] == 'p' ? MAP_POPULATE : 0);
    unsigned char* p = mmap(NULL, n, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    recv_all(s, p, n);
    return p;
  }
  if (strcmp(mode, "huge") == 0) {
    unsigned char* raw =
        mmap(NULL, n + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) die("mmap");
    unsigned char* p =
        (unsigned char*)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (madvise(p, n, MADV_HUGEPAGE) != 0) die("madvise");
    recv_all(s, p, n);
    return p;
  }
  int fd = memfd_create("body", MFD_CLOEXEC);
  if (fd < 0) die("memfd_create");
  size_t have = 0;
  if (strcmp(mode, "memfd") == 0) {
    static unsigned char scratch[SCRATCH];
    while (have < n) {
      size_t want = n - have < SCRATCH ? n - have : SCRATCH;
      ssize_t got = recv(s, scratch, want, 0);
      if (got <= 0) die("recv");
      if (write(fd, scratch, (size_t)got) != got) die("write");
      have += (size_t)got;
    }
  } else {
    while (have < n) {
      ssize_t got = splice(s, NULL, pipes[1], NULL, n - have, SPLICE_F_MOVE);
      if (got <= 0) die("splice from socket");
      for (ssize_t left = got; left > 0;) {
        ssize_t put = splice(pipes[0], NULL, fd, NULL, (size_t)left, SPLICE_F_MOVE);
        if (put <= 0) die("splice to memfd");
        left -= put;
      }
      have += (size_t)got;
    }
  }
  void* p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap memfd");
  close(fd);
  return p;
}

int main(int argc, char** argv) {
  const char* modes = " anon huge populate memfd splice ";
  char key[32];
  if (argc != 3 || snprintf(key, sizeof key, " %s ", argv[1]) >= (int)sizeof key ||
      strstr(modes, key) == NULL) {
    fprintf(stderr, "usage: recv_into anon|huge|populate|memfd|splice FILE\n");
    return 2;
  }
  int file = open(argv[2], O_RDONLY);
  struct stat st;
  if (file < 0 || fstat(file, &st) != 0) die(argv[2]);
  const size_t total = (size_t)st.st_size / BODY * BODY;
  if (total == 0) {
    fprintf(stderr, "recv_into: %s is smaller than 4 MiB\n", argv[2]);
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, (struct sockaddr*)&addr, &len) != 0)
    die("listen");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    int c = accept(listener, NULL, NULL);
    if (c < 0) die("accept");
    off_t off = 0;
    while ((size_t)off < total)
      if (sendfile(c, file, &off, total - (size_t)off) <= 0) die("sendfile");
    close(c);
    _exit(0);
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
  int pipes[2];
  if (pipe2(pipes, O_CLOEXEC) != 0) die("pipe2");
  fcntl(pipes[1], F_SETPIPE_SZ, 1 << 20);
  const double t0 = now();
  for (size_t done = 0; done < total; done += BODY) receive_body(argv[1], s, BODY, pipes);
  const double t1 = now();
  int status = 0;
  waitpid(child, &status, 0);
  printf("mode=%s bytes=%zu seconds=%.6f\n", argv[1], total, t1 - t0);
  return 0;
}
