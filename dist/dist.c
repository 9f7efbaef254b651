#include "dist/dist.h"
#include "tensor/device.h"
#include "tensor/threads.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>

#ifdef HYLA_MPI
#include <mpi.h>
#endif
#ifdef HYLA_NCCL
#include <nccl.h>

#include "tensor/cuda/runtime.h"
#endif

struct hy_group {
#ifdef HYLA_MPI
  MPI_Comm comm;
#endif
#ifdef HYLA_NCCL
  ncclComm_t nccl; /* NULL until the group's first GPU collective */
#endif
  int rank, size;
};

static uint64_t sent[HY_COLL_KINDS];
static hy_collectives mode = HY_COLLECTIVES_ON;
static bool mpi_on;
static int local_rank = 0, local_size = 1; /* among the processes of this machine */

const char *hy_coll_name(hy_coll_kind kind) {
  static const char *const names[] = {"allreduce", "allgather", "reduce_scatter", "broadcast",
                                      "send"};
  return kind < HY_COLL_KINDS ? names[kind] : "?";
}

uint64_t hy_dist_bytes(hy_coll_kind kind) { return sent[kind]; }

void hy_dist_reset_bytes(void) { memset(sent, 0, sizeof sent); }

int hy_dist_world_rank(void) {
  int rank = 0;
#ifdef HYLA_MPI
  if (mpi_on) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#endif
  return rank;
}

bool hy_dist_is_mpi(void) { return mpi_on; }

int hy_dist_start(int *argc, char ***argv) {
#ifdef HYLA_MPI
  /* mpirun (Open MPI, MPICH, Slurm's PMI) announces itself in the environment. */
  if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
    MPI_Init(argc, argv);
    /* A failed rank or a collective error ends the whole job rather than hanging it. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    mpi_on = true;
    /* The processes that share this one's memory: its machine. Found here, where every rank
     * takes part, since a sweep's ranks later train runs of their own. */
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    hy_threads_share(local_size);
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
  }
#else
  (void)argc;
  (void)argv;
#endif
  return 1;
}

static void finish_sends(bool wait);

void hy_dist_stop(void) {
#ifdef HYLA_MPI
  finish_sends(true);
  if (mpi_on) MPI_Finalize();
#endif
  mpi_on = false;
}

_Noreturn void hy_dist_abort(int code) {
#ifdef HYLA_MPI
  if (mpi_on) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  exit(code);
}

static hy_group *group_new(void) {
  hy_group *g = calloc(1, sizeof *g);
  if (!g) hy_die("dist", "out of memory");
  g->size = 1;
  return g;
}

int hy_dist_grid(hy_dist *d, int64_t dp, int64_t sp, hy_error *err) {
  memset(d, 0, sizeof *d);
  d->world = 1;
#ifdef HYLA_MPI
  if (mpi_on) {
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  }
#endif
  if (dp < 1 || sp < 1 || dp * sp != d->world)
    return hy_fail(err,
                   "[dist] dp = %lld x sp = %lld = %lld ranks, but %d %s running (launch with "
                   "mpirun -np %lld, or change [dist])",
                   (long long)dp, (long long)sp, (long long)(dp * sp), d->world,
                   d->world == 1 ? "process is" : "processes are", (long long)(dp * sp));
  d->dp = (int)dp;
  d->sp = (int)sp;
  d->dp_rank = d->rank / d->sp;
  d->sp_rank = d->rank % d->sp;
  d->all = group_new();
  d->dp_group = group_new();
  d->sp_group = group_new();
#ifdef HYLA_MPI
  if (mpi_on) {
    MPI_Comm_dup(MPI_COMM_WORLD, &d->all->comm);
    /* ranks with the same sp_rank share a dp group; the same dp_rank, an sp group */
    MPI_Comm_split(MPI_COMM_WORLD, d->sp_rank, d->dp_rank, &d->dp_group->comm);
    MPI_Comm_split(MPI_COMM_WORLD, d->dp_rank, d->sp_rank, &d->sp_group->comm);
    hy_group *gs[] = {d->all, d->dp_group, d->sp_group};
    for (int i = 0; i < 3; i++) {
      MPI_Comm_rank(gs[i]->comm, &gs[i]->rank);
      MPI_Comm_size(gs[i]->comm, &gs[i]->size);
    }
  }
#endif
  return 0;
}

void hy_dist_alone(hy_dist *d) {
  memset(d, 0, sizeof *d);
  d->world = d->dp = d->sp = 1;
  d->all = group_new();
  d->dp_group = group_new();
  d->sp_group = group_new();
#ifdef HYLA_MPI
  if (mpi_on) {
    hy_group *gs[] = {d->all, d->dp_group, d->sp_group};
    for (int i = 0; i < 3; i++) MPI_Comm_dup(MPI_COMM_SELF, &gs[i]->comm);
  }
#endif
}

int hy_dist_world_size(void) {
  int size = 1;
#ifdef HYLA_MPI
  if (mpi_on) MPI_Comm_size(MPI_COMM_WORLD, &size);
#endif
  return size;
}

int hy_dist_local_rank(void) { return local_rank; }

int hy_dist_local_size(void) { return local_size; }

void hy_dist_free(hy_dist *d) {
  finish_sends(true);
  hy_group *gs[] = {d->all, d->dp_group, d->sp_group};
  for (int i = 0; i < 3; i++) {
    if (!gs[i]) continue;
#ifdef HYLA_NCCL
    if (gs[i]->nccl) ncclCommDestroy(gs[i]->nccl);
#endif
#ifdef HYLA_MPI
    if (mpi_on) MPI_Comm_free(&gs[i]->comm);
#endif
    free(gs[i]);
  }
  memset(d, 0, sizeof *d);
}

int hy_group_rank(const hy_group *g) { return g ? g->rank : 0; }

int hy_group_size(const hy_group *g) { return g ? g->size : 1; }

#ifdef HYLA_MPI
static MPI_Datatype mpi_type(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return MPI_FLOAT;
  case HY_F64: return MPI_DOUBLE;
  case HY_I32: return MPI_INT32_T;
  case HY_BF16: break; /* bf16 lives on GPUs, whose collectives go through NCCL */
  }
  hy_die("dist", "no MPI collective for %s tensors", hy_dtype_name(dtype));
}

/* MPI counts are ints: collectives of more elements go in pieces (allreduce) or abort. */
static int count_of(int64_t n) {
  if (n > 0x7fffffff) hy_die("dist", "a collective of %lld elements", (long long)n);
  return (int)n;
}
#endif

#ifdef HYLA_NCCL
#define NCCL_CHECK(call)                                                                           \
  do {                                                                                             \
    ncclResult_t status_ = (call);                                                                 \
    if (status_ != ncclSuccess) hy_die("nccl", "%s: %s", #call, ncclGetErrorString(status_));      \
  } while (0)

static ncclDataType_t nccl_type(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return ncclFloat32;
  case HY_F64: return ncclFloat64;
  case HY_I32: return ncclInt32;
  case HY_BF16: return ncclBfloat16;
  }
  return ncclChar;
}

/* The group's NCCL communicator, made by all its ranks at their first GPU collective. */
static ncclComm_t nccl_of(hy_group *g) {
  if (!g->nccl) {
    ncclUniqueId id;
    if (g->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, g->comm);
    NCCL_CHECK(ncclCommInitRank(&g->nccl, g->size, id, g->rank));
  }
  return g->nccl;
}
#endif

/* The one place a GPU buffer meets a build that cannot reduce it. */
static void need_nccl(hy_device where) {
#ifndef HYLA_NCCL
  if (where == HY_CUDA)
    hy_die("dist", "a collective on GPU memory needs NCCL (build with -DHYLA_CUDA=ON where NCCL "
                   "and MPI are installed)");
#else
  (void)where;
#endif
}

/* ---- timing (dist.collectives = "timed") ---- */

static double host_seconds[HY_COLL_KINDS]; /* the CPU's, since the last hy_dist_take_seconds */
#ifdef HYLA_NCCL
/* The GPU's: a pair of events around each collective, reused from take to take. */
typedef struct {
  void *start, *end;
  hy_coll_kind kind;
} event_pair;
static event_pair *pairs;
static int n_pairs, cap_pairs;
#endif

void hy_dist_set_collectives(hy_collectives m) { mode = m; }

/* Marks the start of a collective on `where`; returns the host clock for timing_end. */
static double timing_start(hy_device where) {
  if (mode != HY_COLLECTIVES_TIMED) return 0;
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    if (hy_cuda_capturing())
      hy_die("dist", "internal: collectives timed inside a CUDA graph (train turns graphs off)");
    if (n_pairs == cap_pairs) {
      cap_pairs = cap_pairs ? 2 * cap_pairs : 64;
      event_pair *grown = realloc(pairs, (size_t)cap_pairs * sizeof *grown);
      if (!grown) hy_die("dist", "out of memory");
      pairs = grown;
      for (int i = n_pairs; i < cap_pairs; i++)
        pairs[i] = (event_pair){hy_cuda_event_new(), hy_cuda_event_new(), HY_COLL_ALLREDUCE};
    }
    hy_cuda_event_record(pairs[n_pairs].start);
    return 0;
  }
#else
  (void)where;
#endif
  return hy_clock_s();
}

static void timing_end(hy_device where, double started, hy_coll_kind kind) {
  if (mode != HY_COLLECTIVES_TIMED) return;
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    pairs[n_pairs].kind = kind;
    hy_cuda_event_record(pairs[n_pairs++].end);
    return;
  }
#else
  (void)where;
#endif
  host_seconds[kind] += hy_clock_s() - started;
}

double hy_dist_take_seconds(double *by_kind) {
  double s[HY_COLL_KINDS];
  memcpy(s, host_seconds, sizeof s);
  memset(host_seconds, 0, sizeof host_seconds);
#ifdef HYLA_NCCL
  if (n_pairs > 0) hy_cuda_synchronize();
  for (int i = 0; i < n_pairs; i++)
    s[pairs[i].kind] += hy_cuda_event_seconds(pairs[i].start, pairs[i].end);
  n_pairs = 0;
#endif
  double total = 0;
  for (int k = 0; k < HY_COLL_KINDS; k++) total += s[k];
  if (by_kind) memcpy(by_kind, s, sizeof s);
  return total;
}

/* Whether a collective of this group runs at all: not within a group of one, nor when skipped. */
static bool runs(const hy_group *g) { return g && g->size > 1 && mode != HY_COLLECTIVES_SKIPPED; }

/* Collectives of NCCL run on the stream of every kernel (the default one), in order with them. */
static void allreduce_now(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype) {
  sent[HY_COLL_ALLREDUCE] += (uint64_t)n * hy_dtype_size(dtype);
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    NCCL_CHECK(ncclAllReduce(buf, buf, (size_t)n, nccl_type(dtype), ncclSum, nccl_of(g),
                             hy_cuda_stream()));
    return;
  }
#else
  (void)where;
#endif
#ifdef HYLA_MPI
  MPI_Allreduce(MPI_IN_PLACE, buf, count_of(n), mpi_type(dtype), MPI_SUM, g->comm);
#else
  (void)g, (void)buf, (void)n, (void)dtype;
#endif
}

void hy_allreduce_sum(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype) {
  if (!runs(g)) return;
  need_nccl(where);
  double t = timing_start(where);
  allreduce_now(g, where, buf, n, dtype);
  timing_end(where, t, HY_COLL_ALLREDUCE);
}

void hy_allreduce_sum_each(hy_group *g, hy_device where, void *const *bufs, const int64_t *ns,
                           int count, hy_dtype dtype) {
  if (!runs(g) || count == 0) return;
  need_nccl(where);
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    nccl_of(g);                     /* made before the group: its set-up talks over MPI */
    double t = timing_start(where); /* around the group: its work starts at ncclGroupEnd */
    NCCL_CHECK(ncclGroupStart());
    for (int i = 0; i < count; i++) allreduce_now(g, where, bufs[i], ns[i], dtype);
    NCCL_CHECK(ncclGroupEnd());
    timing_end(where, t, HY_COLL_ALLREDUCE);
    return;
  }
#endif
  for (int i = 0; i < count; i++) hy_allreduce_sum(g, where, bufs[i], ns[i], dtype);
}

/* ---- AllGather and reduce-scatter: each rank's part of n elements ---- */

/* The bytes this rank sends for one: its part to every rank, or every part but its own. */
static uint64_t parts_bytes(hy_coll_kind kind, const hy_group *g, int64_t n, hy_dtype dtype) {
  uint64_t bytes = (uint64_t)n * hy_dtype_size(dtype);
  return kind == HY_COLL_ALLGATHER ? bytes : bytes * (uint64_t)(g->size - 1);
}

/* Issues the AllGather (kind HY_COLL_ALLGATHER) or the summing reduce-scatter of send into recv:
 * NCCL on `stream`; MPI blocking, or started under *request where one is given. */
static void issue_parts(hy_coll_kind kind, hy_group *g, hy_device where, const void *send,
                        void *recv, int64_t n, hy_dtype dtype, void *stream, void *request) {
  bool gather = kind == HY_COLL_ALLGATHER;
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    if (gather)
      NCCL_CHECK(ncclAllGather(send, recv, (size_t)n, nccl_type(dtype), nccl_of(g), stream));
    else
      NCCL_CHECK(
          ncclReduceScatter(send, recv, (size_t)n, nccl_type(dtype), ncclSum, nccl_of(g), stream));
    return;
  }
#else
  (void)where, (void)stream;
#endif
#ifdef HYLA_MPI
  MPI_Datatype t = mpi_type(dtype);
  int c = count_of(n);
  MPI_Request *r = request;
  if (gather && r) MPI_Iallgather(send, c, t, recv, c, t, g->comm, r);
  if (gather && !r) MPI_Allgather(send, c, t, recv, c, t, g->comm);
  if (!gather && r) MPI_Ireduce_scatter_block(send, recv, c, t, MPI_SUM, g->comm, r);
  if (!gather && !r) MPI_Reduce_scatter_block(send, recv, c, t, MPI_SUM, g->comm);
#else
  (void)g, (void)send, (void)recv, (void)n, (void)dtype, (void)request, (void)gather;
#endif
}

static void parts_now(hy_coll_kind kind, hy_group *g, hy_device where, const void *send, void *recv,
                      int64_t n, hy_dtype dtype) {
  if (!runs(g)) { /* this rank's own part (unsummed) */
    size_t bytes = (size_t)n * hy_dtype_size(dtype), at = (size_t)hy_group_rank(g) * bytes;
    void *to = kind == HY_COLL_ALLGATHER ? (char *)recv + at : recv;
    const void *from = kind == HY_COLL_ALLGATHER ? send : (const char *)send + at;
    if (to != from) hy_device_copy(where, to, where, from, bytes);
    return;
  }
  sent[kind] += parts_bytes(kind, g, n, dtype);
  need_nccl(where);
  double t = timing_start(where);
#ifdef HYLA_NCCL
  void *stream = where == HY_CUDA ? hy_cuda_stream() : NULL;
#else
  void *stream = NULL;
#endif
  issue_parts(kind, g, where, send, recv, n, dtype, stream, NULL);
  timing_end(where, t, kind);
}

void hy_allgather(hy_group *g, hy_device where, const void *send, void *recv, int64_t n,
                  hy_dtype dtype) {
  parts_now(HY_COLL_ALLGATHER, g, where, send, recv, n, dtype);
}

void hy_reduce_scatter_sum(hy_group *g, hy_device where, const void *send, void *recv, int64_t n,
                           hy_dtype dtype) {
  parts_now(HY_COLL_REDUCE_SCATTER, g, where, send, recv, n, dtype);
}

void hy_broadcast(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype, int root) {
  if (!runs(g)) return;
  if (g->rank == root) sent[HY_COLL_BROADCAST] += (uint64_t)n * hy_dtype_size(dtype);
  need_nccl(where);
  double t = timing_start(where);
#ifdef HYLA_NCCL
  if (where == HY_CUDA)
    NCCL_CHECK(
        ncclBroadcast(buf, buf, (size_t)n, nccl_type(dtype), root, nccl_of(g), hy_cuda_stream()));
#endif
#ifdef HYLA_MPI
  if (where == HY_CPU) MPI_Bcast(buf, count_of(n), mpi_type(dtype), root, g->comm);
#else
  (void)buf, (void)n, (void)dtype, (void)root;
#endif
  timing_end(where, t, HY_COLL_BROADCAST);
}

/* ---- started now, waited for later ---- */

struct hy_inflight {
#ifdef HYLA_MPI
  MPI_Request request;
#endif
  void *event; /* on the GPU: orders the side stream after hyla's, then hyla's after it */
};

#ifdef HYLA_NCCL
static void **spare_events; /* events of finished collectives, for the next ones */
static int n_spare, cap_spare;
#endif

/* A collective in flight on `where`; on the GPU the side stream now waits for hyla's. */
static hy_inflight *inflight_new(hy_device where) {
  hy_inflight *f = calloc(1, sizeof *f);
  if (!f) hy_die("dist", "out of memory");
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    f->event = n_spare > 0 ? spare_events[--n_spare] : hy_cuda_event_new();
    hy_cuda_side_after_main(f->event);
  }
#else
  (void)where;
#endif
  return f;
}

void hy_dist_wait(hy_inflight *f) {
  if (!f) return;
#ifdef HYLA_NCCL
  if (f->event) {
    hy_cuda_main_after_side(f->event);
    if (n_spare == cap_spare) {
      cap_spare = cap_spare ? 2 * cap_spare : 8;
      void **grown = realloc(spare_events, (size_t)cap_spare * sizeof *grown);
      if (!grown) hy_die("dist", "out of memory");
      spare_events = grown;
    }
    spare_events[n_spare++] = f->event;
    free(f);
    return;
  }
#endif
#ifdef HYLA_MPI
  MPI_Wait(&f->request, MPI_STATUS_IGNORE);
#endif
  free(f);
}

/* Whether a collective may be left in flight: one that runs, neither timed nor skipped. */
static bool overlaps(const hy_group *g) { return runs(g) && mode == HY_COLLECTIVES_ON; }

static hy_inflight *parts_start(hy_coll_kind kind, hy_group *g, hy_device where, const void *send,
                                void *recv, int64_t n, hy_dtype dtype) {
  if (!overlaps(g)) {
    parts_now(kind, g, where, send, recv, n, dtype);
    return NULL;
  }
  sent[kind] += parts_bytes(kind, g, n, dtype);
  need_nccl(where);
  void *stream = NULL, *request = NULL;
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    nccl_of(g); /* made before the fork: its set-up talks over MPI */
    stream = hy_cuda_side_stream();
  }
#endif
  hy_inflight *f = inflight_new(where);
#ifdef HYLA_MPI
  if (where == HY_CPU) request = &f->request;
#endif
  issue_parts(kind, g, where, send, recv, n, dtype, stream, request);
  return f;
}

hy_inflight *hy_allgather_start(hy_group *g, hy_device where, const void *send, void *recv,
                                int64_t n, hy_dtype dtype) {
  return parts_start(HY_COLL_ALLGATHER, g, where, send, recv, n, dtype);
}

hy_inflight *hy_reduce_scatter_start(hy_group *g, hy_device where, const void *send, void *recv,
                                     int64_t n, hy_dtype dtype) {
  return parts_start(HY_COLL_REDUCE_SCATTER, g, where, send, recv, n, dtype);
}

void hy_barrier(hy_group *g) {
  if (!g || g->size == 1) return;
#ifdef HYLA_MPI
  MPI_Barrier(g->comm);
#endif
}

/* ---- point to point ---- */

/* The CPU's sends in flight: each from its own copy, freed once delivered. */
#ifdef HYLA_MPI
typedef struct {
  MPI_Request request;
  void *copy;
} pending_send;
static pending_send *pending;
static int n_pending, cap_pending;
#endif

/* Free the sends that have been delivered (wait: all of them, waiting for each). */
static void finish_sends(bool wait) {
#ifdef HYLA_MPI
  int kept = 0;
  for (int i = 0; i < n_pending; i++) {
    int done = 1;
    if (wait)
      MPI_Wait(&pending[i].request, MPI_STATUS_IGNORE);
    else
      MPI_Test(&pending[i].request, &done, MPI_STATUS_IGNORE);
    if (done)
      free(pending[i].copy);
    else
      pending[kept++] = pending[i];
  }
  n_pending = kept;
  if (wait) {
    free(pending);
    pending = NULL;
    cap_pending = 0;
  }
#else
  (void)wait;
#endif
}

static void check_peer(const hy_group *g, int peer, const char *what) {
  if (!g || peer < 0 || peer >= g->size || peer == g->rank)
    hy_die("dist", "%s rank %d of a group of %d (this is rank %d)", what, peer, g ? g->size : 1,
           g ? g->rank : 0);
}

void hy_send(hy_group *g, hy_device where, const void *buf, int64_t n, hy_dtype dtype, int to) {
  check_peer(g, to, "send to");
  if (mode == HY_COLLECTIVES_SKIPPED) return;
  size_t bytes = (size_t)n * hy_dtype_size(dtype);
  sent[HY_COLL_SEND] += bytes;
  need_nccl(where);
  double t = timing_start(where);
#ifdef HYLA_NCCL
  if (where == HY_CUDA) {
    NCCL_CHECK(ncclSend(buf, (size_t)n, nccl_type(dtype), to, nccl_of(g), hy_cuda_stream()));
    timing_end(where, t, HY_COLL_SEND);
    return;
  }
#endif
#ifdef HYLA_MPI
  finish_sends(false);
  if (n_pending == cap_pending) {
    cap_pending = cap_pending ? 2 * cap_pending : 16;
    pending_send *grown = realloc(pending, (size_t)cap_pending * sizeof *grown);
    if (!grown) hy_die("dist", "out of memory");
    pending = grown;
  }
  void *copy = malloc(bytes ? bytes : 1);
  if (!copy) hy_die("dist", "out of memory");
  memcpy(copy, buf, bytes);
  pending[n_pending].copy = copy;
  MPI_Isend(copy, count_of(n), mpi_type(dtype), to, 0, g->comm, &pending[n_pending].request);
  n_pending++;
#else
  (void)buf;
#endif
  timing_end(where, t, HY_COLL_SEND);
}

void hy_recv(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype, int from) {
  check_peer(g, from, "receive from");
  if (mode == HY_COLLECTIVES_SKIPPED) return;
  need_nccl(where);
  double t = timing_start(where);
#ifdef HYLA_NCCL
  if (where == HY_CUDA)
    NCCL_CHECK(ncclRecv(buf, (size_t)n, nccl_type(dtype), from, nccl_of(g), hy_cuda_stream()));
#endif
#ifdef HYLA_MPI
  if (where == HY_CPU) {
    finish_sends(false);
    MPI_Recv(buf, count_of(n), mpi_type(dtype), from, 0, g->comm, MPI_STATUS_IGNORE);
  }
#else
  (void)buf, (void)n, (void)dtype;
#endif
  timing_end(where, t, HY_COLL_SEND);
}
