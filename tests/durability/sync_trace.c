/* An LD_PRELOAD library over fsync, fdatasync, rename, renameat and
 * renameat2 for fsync_order_test: it records every call, in order, with the
 * absolute paths involved, and can make one sync call fail.
 *
 *   STOWAGE_SYNC_TRACE=<file>   append one line per call:
 *                                 fsync <path>
 *                                 fdatasync <path>
 *                                 rename <from> <to> flags=<n> ok|failed
 *                               (unset: nothing is recorded or injected)
 *   STOWAGE_SYNC_FAIL=<op>:<n>  the n-th call (from 1) of op (fsync or
 *                               fdatasync) fails with EIO without syncing;
 *                               the line says "failed".
 *
 * Paths come from /proc/self/fd, so a folder is named even when opened by
 * a handle only. Thread-safety: a mutex orders the lines of concurrent
 * calls; counts are process-wide. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ISO C has no cast from dlsym's object pointer to a function pointer. */
#define LOOKUP(fn, name)                \
  do {                                  \
    if (fn == NULL) {                   \
      void* p = dlsym(RTLD_NEXT, name); \
      memcpy(&fn, &p, sizeof p);        \
    }                                   \
  } while (0)

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_fsyncs, g_fdatasyncs;

static void fd_path(int fd, char* out, size_t size) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, size - 1);
  if (n < 0) n = snprintf(out, size, "<fd %d>", fd);
  out[n] = '\0';
}

static void at_path(int dirfd, const char* name, char* out, size_t size) {
  if (name[0] == '/') {
    snprintf(out, size, "%s", name);
    return;
  }
  char dir[PATH_MAX];
  if (dirfd == AT_FDCWD) {
    if (getcwd(dir, sizeof dir) == NULL) snprintf(dir, sizeof dir, ".");
  } else {
    fd_path(dirfd, dir, sizeof dir);
  }
  /* A path cut short would match nothing the test looks for: say so. */
  if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) snprintf(out, size, "<path too long>");
}

static void record(const char* line) {
  const char* file = getenv("STOWAGE_SYNC_TRACE");
  if (file == NULL) return;
  int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  size_t len = strlen(line);
  if (write(fd, line, len) != (ssize_t)len) { /* a short trace fails the test's checks */
  }
  close(fd);
}

/* Whether this call, the `count`-th of `op`, is the one to fail. */
static int should_fail(const char* op, unsigned count) {
  const char* rule = getenv("STOWAGE_SYNC_FAIL");
  if (rule == NULL || getenv("STOWAGE_SYNC_TRACE") == NULL) return 0;
  size_t n = strlen(op);
  return strncmp(rule, op, n) == 0 && rule[n] == ':' && strtoul(rule + n + 1, NULL, 10) == count;
}

static int sync_call(const char* op, unsigned* counter, int fd) {
  static int (*real_fsync)(int);
  static int (*real_fdatasync)(int);
  LOOKUP(real_fsync, "fsync");
  LOOKUP(real_fdatasync, "fdatasync");
  char path[PATH_MAX], line[PATH_MAX + 64];
  fd_path(fd, path, sizeof path);
  pthread_mutex_lock(&g_mu);
  const int fail = getenv("STOWAGE_SYNC_TRACE") != NULL && should_fail(op, ++*counter);
  snprintf(line, sizeof line, "%s %s%s\n", op, path, fail ? " failed" : "");
  record(line);
  pthread_mutex_unlock(&g_mu);
  if (fail) {
    errno = EIO;
    return -1;
  }
  return strcmp(op, "fsync") == 0 ? real_fsync(fd) : real_fdatasync(fd);
}

int fsync(int fd) { return sync_call("fsync", &g_fsyncs, fd); }
int fdatasync(int fd) { return sync_call("fdatasync", &g_fdatasyncs, fd); }

/* Resolves the paths before the rename moves them, records after it. */
#define TRACED_RENAME(olddir, from, newdir, to, flags, call)                           \
  do {                                                                                 \
    if (getenv("STOWAGE_SYNC_TRACE") == NULL) return call;                             \
    char a[PATH_MAX], b[PATH_MAX], line[2 * PATH_MAX + 64];                            \
    at_path(olddir, from, a, sizeof a);                                                \
    at_path(newdir, to, b, sizeof b);                                                  \
    int rc = call;                                                                     \
    int err = errno;                                                                   \
    snprintf(line, sizeof line, "rename %s %s flags=%u %s\n", a, b, (unsigned)(flags), \
             rc == 0 ? "ok" : "failed");                                               \
    pthread_mutex_lock(&g_mu);                                                         \
    record(line);                                                                      \
    pthread_mutex_unlock(&g_mu);                                                       \
    errno = err;                                                                       \
    return rc;                                                                         \
  } while (0)

typedef int (*renameat2_fn)(int, const char*, int, const char*, unsigned);
typedef int (*renameat_fn)(int, const char*, int, const char*);
typedef int (*rename_fn)(const char*, const char*);

int renameat2(int olddir, const char* from, int newdir, const char* to, unsigned flags) {
  static renameat2_fn real;
  LOOKUP(real, "renameat2");
  TRACED_RENAME(olddir, from, newdir, to, flags, real(olddir, from, newdir, to, flags));
}

int renameat(int olddir, const char* from, int newdir, const char* to) {
  static renameat_fn real;
  LOOKUP(real, "renameat");
  TRACED_RENAME(olddir, from, newdir, to, 0, real(olddir, from, newdir, to));
}

int rename(const char* from, const char* to) {
  static rename_fn real;
  LOOKUP(real, "rename");
  TRACED_RENAME(AT_FDCWD, from, AT_FDCWD, to, 0, real(from, to));
}
