#include "data/subword.h"
#include "util/stop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *hy_subword_python(void) {
  const char *p = getenv("HYLA_PYTHON");
  return p && *p ? p : "python3";
}

/* The source tree holds the script: found from where this file was compiled (data/), as
 * data/builtin.c finds the corpus, so any build directory and a binary run from anywhere find it.
 */
void hy_subword_script(char *out, size_t n) {
  char root[4096];
  snprintf(root, sizeof root, "%s", __FILE__); /* ROOT/data/subword.c */
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(root, '/');
    if (!slash) {
      snprintf(root, sizeof root, ".");
      break;
    }
    *slash = 0;
  }
  snprintf(out, n, "%s/scripts/tokenize-text.py", root);
}

/* ---- running the script ---- */

typedef struct {
  unsigned char *data;
  size_t n, cap;
} buffer;

/* Room for more in b; false when memory runs out. */
static bool grow(buffer *b) {
  if (b->n < b->cap) return true;
  size_t cap = b->cap ? 2 * b->cap : (size_t)1 << 16;
  unsigned char *more = realloc(b->data, cap);
  if (!more) return false;
  b->data = more;
  b->cap = cap;
  return true;
}

static pid_t spawn(const char *python, char *const *argv, int in, int out, int *errnum) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t pipe_default;
  sigemptyset(&pipe_default);
  sigaddset(&pipe_default, SIGPIPE); /* hyla ignores it while it writes to the script */
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigdefault(&at, &pipe_default);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  *errnum = posix_spawnp(&pid, python, &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return *errnum ? -1 : pid;
}

/* Writes the input to fd `to` as the script takes it and reads what it writes from `from` until
 * it closes it. Polled, so that neither side waits on the other with a pipe full, and a stop is
 * seen within a tenth of a second. 1: stopped; -1: a pipe failed (err). */
static int exchange(int to, int from, const unsigned char *text, size_t n, buffer *got,
                    hy_error *err) {
  size_t sent = 0;
  int failed = 0; /* the errno of a poll or read that failed */
  fcntl(to, F_SETFL, O_NONBLOCK);
  if (n == 0) {
    close(to);
    to = -1;
  }
  while (!hy_stop_asked()) {
    struct pollfd p[2] = {{.fd = from, .events = POLLIN}, {.fd = to, .events = POLLOUT}};
    int ready = poll(p, 2, 100);
    if (ready < 0 && errno != EINTR) {
      failed = errno;
      break;
    }
    if (ready <= 0) continue;
    if (to >= 0 && p[1].revents) {
      size_t piece = n - sent < ((size_t)1 << 16) ? n - sent : (size_t)1 << 16;
      ssize_t w = write(to, text + sent, piece);
      if (w > 0) sent += (size_t)w;
      /* the script ended before taking it all (EPIPE): its exit status says why */
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == n) {
        close(to);
        to = -1;
      }
    }
    if (p[0].revents) {
      if (!grow(got)) {
        failed = ENOMEM;
        break;
      }
      ssize_t r = read(from, got->data + got->n, got->cap - got->n);
      if (r == 0) break; /* the script closed its output */
      if (r > 0) got->n += (size_t)r;
      if (r < 0 && errno != EINTR && errno != EAGAIN) {
        failed = errno;
        break;
      }
    }
  }
  if (to >= 0) close(to);
  if (failed) return hy_fail(err, "reading the tokenizer's output: %s", strerror(failed));
  return hy_stop_asked() ? 1 : 0;
}

static int run_script(const char *tokenizer, const unsigned char *text, size_t n, buffer *got,
                      hy_error *err) {
  const char *python = hy_subword_python();
  char script[4200];
  hy_subword_script(script, sizeof script);
  if (access(script, R_OK) != 0)
    return hy_fail(err, "%s: cannot read the tokenizer script: %s", script, strerror(errno));
  int in[2], out[2];
  if (pipe(in)) return hy_fail(err, "cannot make a pipe: %s", strerror(errno));
  if (pipe(out)) {
    int e = errno;
    close(in[0]);
    close(in[1]);
    return hy_fail(err, "cannot make a pipe: %s", strerror(e));
  }
  for (int i = 0; i < 2; i++) { /* the script keeps only its ends, as 0 and 1 */
    fcntl(in[i], F_SETFD, FD_CLOEXEC);
    fcntl(out[i], F_SETFD, FD_CLOEXEC);
  }
  char *argv[] = {(char *)python, script, (char *)tokenizer, NULL};
  int errnum;
  pid_t pid = spawn(python, argv, in[0], out[1], &errnum);
  close(in[0]); /* the script's ends */
  close(out[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    return hy_fail(err,
                   "--tokenizer needs Python: cannot run '%s' (%s); scripts/setup.sh installs "
                   "python3 and its tokenizers package, and HYLA_PYTHON names another interpreter",
                   python, strerror(errnum));
  }
  struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, &old); /* a script that ends early fails the write, not hyla */
  int rc = exchange(in[1], out[0], text, n, got, err);
  sigaction(SIGPIPE, &old, NULL);
  close(out[0]);
  if (rc) kill(pid, SIGTERM);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
  if (rc > 0) return hy_fail(err, "tokenizing stopped");
  if (rc < 0) return rc;
  if (WIFSIGNALED(status))
    return hy_fail(err, "%s: the tokenizer script (%s %s) was killed by signal %d", tokenizer,
                   python, script, WTERMSIG(status));
  if (WEXITSTATUS(status) != 0)
    return hy_fail(err,
                   "%s: the tokenizer script (%s %s) failed with exit status %d (its message is "
                   "above)",
                   tokenizer, python, script, WEXITSTATUS(status));
  return 0;
}

/* ---- reading its output ---- */

typedef struct {
  const unsigned char *p, *end;
} reader;

static bool take(reader *r, size_t n, const unsigned char **s) {
  if ((size_t)(r->end - r->p) < n) return false;
  *s = r->p;
  r->p += n;
  return true;
}

static bool take_u32(reader *r, uint32_t *v) {
  const unsigned char *s;
  if (!take(r, 4, &s)) return false;
  *v = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
  return true;
}

static int malformed(const char *tokenizer, const char *what, hy_error *err) {
  return hy_fail(err, "%s: the tokenizer script's output is malformed: %s", tokenizer, what);
}

static int parse_vocab(const char *tokenizer, reader *r, hy_subword_text *t, hy_error *err) {
  uint32_t n, len;
  const unsigned char *s;
  if (!take(r, 8, &s) || memcmp(s, "hylatok1", 8)) return malformed(tokenizer, "no header", err);
  if (!take_u32(r, &len) || len == 0 || len >= HY_TOKENIZER_NAME || !take(r, len, &s))
    return malformed(tokenizer, "no tokenizer kind of 1 to 31 bytes", err);
  memcpy(t->kind, s, len);
  t->kind[len] = 0;
  if (!take_u32(r, &n)) return malformed(tokenizer, "no vocabulary size", err);
  if (n < 2 || n > HY_VOCAB_MAX)
    return hy_fail(err, "%s: a vocabulary of %u tokens; hyla's datasets hold 2 to %d", tokenizer, n,
                   HY_VOCAB_MAX);
  reader first = *r; /* two passes: the lengths, then the bytes */
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!take_u32(r, &len) || !take(r, len, &s)) return malformed(tokenizer, "a short token", err);
    total += len;
  }
  hy_vocab *v = &t->vocab;
  v->offsets = malloc((n + 1) * sizeof *v->offsets);
  v->bytes = malloc(total ? total : 1);
  if (!v->offsets || !v->bytes)
    return hy_fail(err, "%s: out of memory for the vocabulary", tokenizer);
  v->n = n;
  v->offsets[0] = 0;
  for (uint32_t i = 0; i < n; i++) {
    take_u32(&first, &len);
    take(&first, len, &s);
    memcpy(v->bytes + v->offsets[i], s, len);
    v->offsets[i + 1] = v->offsets[i] + len;
  }
  return 0;
}

static int parse_ids(const char *tokenizer, reader *r, int64_t n_docs, hy_subword_text *t,
                     hy_error *err) {
  size_t most = (size_t)(r->end - r->p) / 4; /* no more ids than the bytes left can hold */
  t->ids = malloc(most ? most * sizeof *t->ids : 1);
  t->docs = malloc((size_t)(n_docs ? n_docs : 1) * sizeof *t->docs);
  if (!t->ids || !t->docs) return hy_fail(err, "%s: out of memory for the ids", tokenizer);
  for (t->n_docs = 0; t->n_docs < n_docs; t->n_docs++) {
    t->docs[t->n_docs] = t->n_ids;
    for (uint32_t k;;) { /* blocks of ids, an empty one ending the document */
      if (!take_u32(r, &k))
        return malformed(tokenizer, "a document's ids do not end with an empty block", err);
      if (k == 0) break;
      for (uint32_t j = 0; j < k; j++) {
        uint32_t id;
        if (!take_u32(r, &id)) return malformed(tokenizer, "a short block of ids", err);
        if (id >= t->vocab.n)
          return hy_fail(err, "%s: the tokenizer gave id %u, outside its vocabulary of %lld",
                         tokenizer, id, (long long)t->vocab.n);
        t->ids[t->n_ids++] = (hy_token)id;
      }
    }
  }
  if (r->p != r->end) return malformed(tokenizer, "bytes after the last document's ids", err);
  return 0;
}

/* Each document's ids' bytes, one after another, must be its text. */
static int check_decodes(const char *tokenizer, const hy_subword_text *t, const unsigned char *text,
                         size_t n, const int64_t *starts, hy_error *err) {
  size_t at = 0;
  for (int64_t i = 0, doc = 0; i <= t->n_ids; i++) {
    for (; doc < t->n_docs && t->docs[doc] == i; doc++)
      if (at != (size_t)starts[doc])
        return hy_fail(err,
                       "%s: the tokens of document %lld begin at byte %zu of the text, not %lld "
                       "where it does",
                       tokenizer, (long long)doc, at, (long long)starts[doc]);
    if (i == t->n_ids) break;
    size_t len;
    const unsigned char *b = hy_vocab_token(&t->vocab, t->ids[i], &len);
    if (len > n - at || memcmp(b, text + at, len))
      return hy_fail(err,
                     "%s: the tokens do not decode to the text: token %lld (id %u) differs from "
                     "it at byte %zu; hyla takes tokenizers whose tokens give the text back byte "
                     "for byte (no normalizer, no spaces added or stripped)",
                     tokenizer, (long long)i, t->ids[i], at);
    at += len;
  }
  if (at != n)
    return hy_fail(err, "%s: the tokens decode to the first %zu of the text's %zu bytes", tokenizer,
                   at, n);
  return 0;
}

/* What the script reads: a header, then each document as its length (u64) and its bytes. */
static unsigned char *frame(const unsigned char *text, size_t n, const int64_t *starts,
                            int64_t n_docs, size_t *size) {
  *size = 8 + n + 8 * (size_t)n_docs;
  unsigned char *f = malloc(*size), *p = f;
  if (!f) return NULL;
  memcpy(p, "hylatxt1", 8);
  p += 8;
  for (int64_t i = 0; i < n_docs; i++) {
    uint64_t len = (i + 1 < n_docs ? (uint64_t)starts[i + 1] : n) - (uint64_t)starts[i];
    for (int b = 0; b < 8; b++) *p++ = (unsigned char)(len >> (8 * b));
    memcpy(p, text + starts[i], len);
    p += len;
  }
  return f;
}

int hy_subword_tokenize(const char *tokenizer, const unsigned char *text, size_t n,
                        const int64_t *starts, int64_t n_docs, hy_subword_text *out,
                        hy_error *err) {
  *out = (hy_subword_text){0};
  if (access(tokenizer, R_OK) != 0)
    return hy_fail(err, "--tokenizer %s: cannot read it: %s", tokenizer, strerror(errno));
  size_t size;
  unsigned char *framed = frame(text, n, starts, n_docs, &size);
  if (!framed) return hy_fail(err, "out of memory for the text");
  buffer got = {0};
  int rc = run_script(tokenizer, framed, size, &got, err);
  free(framed);
  reader r = {got.data, got.data + got.n};
  if (!rc) rc = parse_vocab(tokenizer, &r, out, err);
  if (!rc) rc = parse_ids(tokenizer, &r, n_docs, out, err);
  if (!rc) rc = check_decodes(tokenizer, out, text, n, starts, err);
  free(got.data);
  if (rc) hy_subword_free(out);
  return rc;
}

void hy_subword_free(hy_subword_text *t) {
  hy_vocab_free(&t->vocab);
  free(t->ids);
  free(t->docs);
  *t = (hy_subword_text){0};
}
