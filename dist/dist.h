/* Distribution: the only part of hyla that talks to MPI and NCCL. Ranks form a grid of dp x sp:
 * dp groups split the batch (data parallel), sp groups split the sequence (LASP-2 / LASP-2H).
 * Built without MPI, or run as one process, every group has one member and the collectives copy.
 * Collectives on host buffers go through MPI; on GPU buffers (built with CUDA and NCCL) through
 * a NCCL communicator per group, made at its first GPU collective from a unique id that the
 * group's rank 0 broadcasts over MPI. */
#ifndef HYLA_DIST_H
#define HYLA_DIST_H

#include "tensor/tensor.h"
#include "util/error.h"

typedef enum {
  HY_COLL_ALLREDUCE,
  HY_COLL_ALLGATHER,
  HY_COLL_REDUCE_SCATTER,
  HY_COLL_BROADCAST,
  HY_COLL_SEND, /* point to point (hy_send) */
  HY_COLL_KINDS
} hy_coll_kind;

typedef struct hy_group hy_group; /* a communicator */

typedef struct {
  int world, rank;      /* all processes */
  int dp, sp;           /* the grid: world = dp * sp */
  int dp_rank, sp_rank; /* rank = dp_rank * sp + sp_rank */
  hy_group *all, *dp_group, *sp_group;
} hy_dist;

/* Start MPI when launched by mpirun (and built with MPI); returns the world's size. */
int hy_dist_start(int *argc, char ***argv);
void hy_dist_stop(void);
bool hy_dist_is_mpi(void);
int hy_dist_world_rank(void); /* 0 without MPI */
/* Arrange the processes as dp x sp; an error (the same on every rank) when dp * sp is not the
 * number of processes. */
int hy_dist_grid(hy_dist *d, int64_t dp, int64_t sp, hy_error *err);
/* A grid of this process alone (world 1), whatever mpirun started: hyla sweep trains one run on
 * each rank, with no collectives between them. */
void hy_dist_alone(hy_dist *d);
int hy_dist_world_size(void); /* 1 without MPI */
/* This process's rank among the processes on its machine, and their number (0 and 1 without
 * MPI): the GPU a rank uses is its local rank. */
int hy_dist_local_rank(void);
int hy_dist_local_size(void);
void hy_dist_free(hy_dist *d);
/* Abort every rank (the job ends instead of hanging on a collective). */
_Noreturn void hy_dist_abort(int code);

int hy_group_rank(const hy_group *g);
int hy_group_size(const hy_group *g);

/* Collectives on f32/f64/i32 buffers of n elements (per rank for gather and scatter), in the
 * memory of `where`: HY_CPU (MPI) or HY_CUDA (NCCL; every rank of the group on its own GPU). */
void hy_allreduce_sum(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype);
/* hy_allreduce_sum of count buffers (bufs[i] of ns[i] elements): on the GPU one NCCL group, which
 * launches them together; on the CPU one after another. */
void hy_allreduce_sum_each(hy_group *g, hy_device where, void *const *bufs, const int64_t *ns,
                           int count, hy_dtype dtype);
void hy_allgather(hy_group *g, hy_device where, const void *send, void *recv, int64_t n,
                  hy_dtype dtype);
void hy_reduce_scatter_sum(hy_group *g, hy_device where, const void *send, void *recv, int64_t n,
                           hy_dtype dtype);
void hy_broadcast(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype, int root);

/* An allgather or a reduce-scatter started now and finished by hy_dist_wait, to overlap it with
 * work that does not need it (LASP-2's AllGather with the intra-chunk compute). On the CPU MPI's
 * nonblocking forms; on the GPU NCCL on hy_cuda_side_stream, after the work queued on hyla's
 * stream so far, and hy_dist_wait makes hyla's stream wait for it. Neither buffer may be touched
 * until the wait. NULL when nothing is left in flight: a group of one, or collectives timed (each
 * timed apart, so run whole at the start) or skipped. */
typedef struct hy_inflight hy_inflight;
hy_inflight *hy_allgather_start(hy_group *g, hy_device where, const void *send, void *recv,
                                int64_t n, hy_dtype dtype);
hy_inflight *hy_reduce_scatter_start(hy_group *g, hy_device where, const void *send, void *recv,
                                     int64_t n, hy_dtype dtype);
void hy_dist_wait(hy_inflight *f); /* NULL: returns */
void hy_barrier(hy_group *g);

/* Point to point within a group, for pipelines along it: n elements from this rank to rank `to`,
 * which takes them with hy_recv(..., from = this rank). A send does not wait for its receiver:
 * on the CPU it goes out in the background from a copy (MPI_Isend, freed once delivered; all are
 * waited for when the grid is freed); on the GPU it is queued on hyla's stream (ncclSend), whose
 * later work waits for the receiver. hy_recv returns when the data is here (on the GPU: queued on
 * the stream before the work that reads it). */
void hy_send(hy_group *g, hy_device where, const void *buf, int64_t n, hy_dtype dtype, int to);
void hy_recv(hy_group *g, hy_device where, void *buf, int64_t n, hy_dtype dtype, int from);

/* How the collectives run (dist.collectives): as asked; timed, each one's time measured apart
 * (on the GPU by events around it on hyla's stream, which a CUDA graph cannot capture); or
 * skipped, none run and each rank keeps its own numbers (an allgather or a reduce-scatter fills
 * only this rank's part), for the time of a step without communication: the results are wrong.
 * hy_barrier runs in every mode. */
typedef enum { HY_COLLECTIVES_ON, HY_COLLECTIVES_TIMED, HY_COLLECTIVES_SKIPPED } hy_collectives;
void hy_dist_set_collectives(hy_collectives mode);
/* The seconds the collectives took since the last call (0 unless timed; on the GPU it waits for
 * hyla's stream), and in by_kind (NULL, or HY_COLL_KINDS of them) each kind's share (a send and
 * its receive both count as HY_COLL_SEND). */
double hy_dist_take_seconds(double *by_kind);

/* Bytes this process has sent per kind of collective, and their names for the run log. */
uint64_t hy_dist_bytes(hy_coll_kind kind);
const char *hy_coll_name(hy_coll_kind kind);
void hy_dist_reset_bytes(void);

#endif
