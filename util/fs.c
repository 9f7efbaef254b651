#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int hy_mkdirs(const char *path, hy_error *err) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return hy_fail(err, "%s: path too long", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return hy_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST)
    return hy_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
  struct stat st;
  if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
    return hy_fail(err, "%s: exists and is not a directory", buf);
  return 0;
}

/* ---- atomic writes ---- */

/* <path>.tmp.<16 random hex digits>: a name nobody can plant a file or a symlink at in advance. */
static int temp_name(const char *path, char *out, size_t n, hy_error *err) {
  unsigned char r[8];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    return hy_fail(err, "%s: cannot draw a temporary name: %s", path, strerror(errno));
  int len = snprintf(out, n, "%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", path, r[0], r[1], r[2],
                     r[3], r[4], r[5], r[6], r[7]);
  if (len < 0 || (size_t)len >= n) return hy_fail(err, "%s: path too long", path);
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Flush a directory's entries (the rename just made in it) to disk. A file system that cannot
 * sync a directory says EINVAL: there is nothing more to do there. */
static int sync_dir_of(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
  close(fd);
  return rc;
}

int hy_write_bytes_atomic(const char *path, const void *data, size_t n, bool replace,
                          hy_error *err) {
  char tmp[4096];
  if (temp_name(path, tmp, sizeof tmp, err)) return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) return hy_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
  const char *failed = NULL;
  if (write_all(fd, data, n))
    failed = "write";
  else if (fsync(fd))
    failed = "fsync";
  int e = errno;
  if (close(fd) && !failed) failed = "close", e = errno;
  if (!failed && replace && rename(tmp, path)) failed = "rename", e = errno;
  if (!failed && !replace && link(tmp, path)) failed = "link", e = errno;
  if (failed || !replace) unlink(tmp);
  if (failed && e == EEXIST && !replace)
    return hy_fail(err, "%s: already exists (not replaced)", path);
  if (failed) return hy_fail(err, "%s: writing failed (%s: %s)", path, failed, strerror(e));
  if (sync_dir_of(path))
    return hy_fail(err, "%s: cannot fsync its directory: %s", path, strerror(errno));
  return 0;
}

int hy_write_file_atomic(const char *path, const char *text, hy_error *err) {
  return hy_write_bytes_atomic(path, text, strlen(text), true, err);
}

FILE *hy_open_for_writing(const char *path, bool append) {
  int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  int fd = open(path, flags, 0666);
  FILE *f = fd < 0 ? NULL : fdopen(fd, append ? "a" : "w");
  if (fd >= 0 && !f) close(fd);
  return f;
}

char *hy_read_file(const char *path, size_t *size, hy_error *err) {
  return hy_read_file_until(path, size, NULL, err);
}

/* Whether fd has bytes (or its end, or an error) to read before stop() answers non-zero: a pipe
 * whose writer is silent is waited on a tenth of a second at a time. */
static bool readable_before_stop(int fd, int (*stop)(void)) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (!stop()) {
    int ready = poll(&p, 1, 100);
    if (ready > 0 || (ready < 0 && errno != EINTR)) return true;
  }
  return false;
}

char *hy_read_file_until(const char *path, size_t *size, int (*stop)(void), hy_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    hy_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  /* read(), not fread(): from a pipe it returns what has come, so stop() is asked between pieces
   * (at most 16 MiB each) even while the writer is slow */
  enum { PIECE = 1 << 24 };
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  ssize_t got = 1;
  bool stopped = false;
  while (buf && got != 0 && !(stopped = stop && !readable_before_stop(fd, stop))) {
    size_t room = cap - n - 1;
    got = read(fd, buf + n, room < PIECE ? room : PIECE);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) break;
    n += (size_t)got;
    if (n + 1 == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  int read_errno = errno;
  close(fd);
  if (buf && got >= 0 && !stopped) {
    buf[n] = 0;
    if (size) *size = n;
    return buf;
  }
  if (stopped)
    hy_fail(err, "%s: reading stopped", path);
  else
    hy_fail(err, "%s: cannot read: %s", path, buf ? strerror(read_errno) : "out of memory");
  free(buf);
  return NULL;
}

/* ---- run directory locks ---- */

int hy_lock_dir(const char *dir, hy_error *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
    return hy_fail(err, "%s: path too long", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    return hy_fail(err, "%s: cannot open the run directory's lock: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char text[32] = "";
    long long pid = 0;
    if (pread(fd, text, sizeof text - 1, 0) > 0 && sscanf(text, "%lld", &pid) == 1 && pid > 0)
      snprintf(text, sizeof text, " (pid %lld)", pid);
    else
      text[0] = 0;
    close(fd);
    if (e != EWOULDBLOCK) return hy_fail(err, "%s: cannot lock: %s", path, strerror(e));
    return hy_fail(err,
                   "%s: the run directory is in use by another hyla process%s; wait for it to "
                   "end, or give this run another run.out",
                   dir, text);
  }
  /* The pid is for the message above only: failing to record it changes nothing else. */
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%lld\n", (long long)getpid());
  bool recorded = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) == len;
  (void)recorded;
  return fd;
}

void hy_unlock_dir(int fd) {
  if (fd >= 0) close(fd); /* the file stays: removing it would let two processes lock two files */
}
