/* Which math libraries and instruction sets compute the models (each daemon
 * logs it at start, exports it on /metrics and a worker reports it when it
 * registers), and how many compute threads a model's gradient uses. */
#ifndef PANDO_KERNELS_H
#define PANDO_KERNELS_H

/* Most compute threads a model may use (the worker setting `threads`). */
#define PD_KERNELS_MAX_THREADS 256

/* One line for logs and `pandoctl cluster`, e.g. "oneDNN 2.6.3 (avx512_core),
 * OpenBLAS 0.3.21 (SkylakeX)": the matrix products' and convolutions'
 * library with the instruction set its generated code uses on this CPU, then
 * the vector operations' library with the kernels it picked. The string is
 * the calling thread's until its next call. */
const char *pd_kernels_describe(void);
/* Its parts: "oneDNN 2.6.3"; "avx2", "avx512_core", "avx512_core_amx", ...;
 * "OpenBLAS 0.3.21"; OpenBLAS's kernel name ("Haswell", "Prescott", ...). */
const char *pd_kernels_library(void);
const char *pd_kernels_isa(void);
const char *pd_kernels_blas(void);
const char *pd_kernels_blas_core(void);

/* Sets how many compute threads models made from now on use (1 ..
 * PD_KERNELS_MAX_THREADS; default 1): each computes a slice of every batch
 * and their gradients are summed. The math libraries themselves run single
 * threaded in every thread, so a process uses `threads` cores for its
 * gradients. Call it once at start-up, before making models. */
void pd_kernels_set_threads(int threads);
int pd_kernels_threads(void);

#endif
