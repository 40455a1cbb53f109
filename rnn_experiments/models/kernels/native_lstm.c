/* The LSTM's time loops of LSTMFunction (fused.py) in C: one call runs all T steps of the
 * forward or of the backward, each step one BLAS product per member and one pass over the
 * step's rows, instead of a dozen ATen calls from Python per step (native.py builds and loads
 * this file; it is chosen per machine by measurement, training/impl.py).
 *
 * Same buffers and layout as LSTMFunction (fused.py, _LSTMBuffers), per step t, R = K·B rows:
 *   x[t]     (R, X)   [h_{t-1} | onehot(v_t)] (fold: X = H + V), or [h_{t-1}] (X = H)
 *   gates[t] (R, 4H)  a_t, then [K_t | i_t | f_t | o_t], then dA_t (backward)
 *   gc[t]    (R, 2H)  [g_t | c_{t-1}]
 *   tc[t]    (R, H)   tanh c_t
 * W (K, X, 4H) = [W_h^T; P] (fold) or W_h^T; the table P (K·V, 4H) where not fold (rows gathered
 * by ids, member rows k·V + v); W_h (K, 4H, H) for the backward; mask (T, R) or NULL: m_t.
 * The forward returns 0, or 1 + t·R + r for the first token id v_t of row r outside [0, V)
 * (nothing is read or written out of bounds; the caller raises).
 *
 *   g_t = tanh a^g = 2σ(2a^g) - 1,  i, f, o = σ(a^i, a^f, a^o)
 *   c_t = (c_{t-1} ⊙ f_t + g_t ⊙ i_t) ⊙ m_t,  h_t = tanh c_t ⊙ o_t,  K_t = o_t - h_t ⊙ tanh c_t
 * backward (dcf: dc_{t+1} ⊙ f_{t+1}, 0 at t = T):
 *   dc_t = (dcf + dh_t ⊙ K_t) ⊙ m_t
 *   dA_t = [dc i (1 - g²), dc g (1 - i) i, dc c_{t-1} (1 - f) f, dh tanh c (1 - o) o]
 *   dh_{t-1} = dA_t W_h
 * The products in the order of ATen's sigmoid_backward / tanh_backward.
 * BLAS: the Fortran sgemm_/dgemm_ (column-major) that torch's own library exports, handed in
 * by native.py; row-major C = A B is column-major C^T = B^T A^T.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef RNN_MVEC   /* glibc's vector exp (libmvec): the loops below vectorize */
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
#endif

typedef void (*gemm_f32)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*gemm_f64)(const char *, const char *, const int *, const int *, const int *,
                         const double *, const double *, const int *, const double *, const int *,
                         const double *, double *, const int *);

#define DEFINE(SUFFIX, REAL, EXP, GEMM_T)                                                          \
/* C (rows, n) = A (rows, k; row stride lda) B (k, n) + beta C, row-major */                      \
static void mm_##SUFFIX(GEMM_T gemm, int rows, int n, int k, const REAL *A, int lda,             \
                        const REAL *B, REAL beta, REAL *C) {                                      \
    const REAL one = 1;                                                                           \
    gemm("N", "N", &n, &rows, &k, &one, B, &n, A, &lda, &beta, C, &n);                            \
}                                                                                                 \
                                                                                                  \
int64_t lstm_forward_##SUFFIX(int T, int K, int B, int H, int X, int V, int fold,                \
                          const REAL *W, const REAL *table, const int64_t *ids,                   \
                          const int64_t *x_ptrs, const int64_t *gate_ptrs,                        \
                          const int64_t *gc_ptrs, const int64_t *tc_ptrs,                         \
                          REAL *h_last, REAL *c_last, const REAL *mask, void *gemm_ptr) {         \
    GEMM_T gemm = (GEMM_T)gemm_ptr;                                                               \
    const int R = K * B, H4 = 4 * H;                                                              \
    for (int64_t n = 0; n < (int64_t)T * R; n++) {    /* every id in its member's vocabulary */   \
        const int64_t first = fold ? 0 : (int64_t)(n % R / B) * V;                                \
        if (ids[n] < first || ids[n] >= first + V) return 1 + n;                                  \
    }                                                                                             \
    for (int t = 0; t < T; t++) {                                                                 \
        REAL *x = (REAL *)x_ptrs[t], *a = (REAL *)gate_ptrs[t];                                   \
        REAL *gc = (REAL *)gc_ptrs[t], *tc = (REAL *)tc_ptrs[t];                                  \
        REAL *x_next = t + 1 < T ? (REAL *)x_ptrs[t + 1] : NULL;                                  \
        REAL *gc_next = t + 1 < T ? (REAL *)gc_ptrs[t + 1] : NULL;                                \
        const int64_t *v = ids + (int64_t)t * R;                                                  \
        if (t == 0)                                   /* h_0 = c_0 = 0 */                         \
            for (int r = 0; r < R; r++) {                                                         \
                memset(x + (int64_t)r * X, 0, sizeof(REAL) * H);                                  \
                memset(gc + (int64_t)r * 2 * H + H, 0, sizeof(REAL) * H);                         \
            }                                                                                     \
        if (fold) {                                   /* onehot(v_t) into x, then one product */  \
            for (int r = 0; r < R; r++) {                                                         \
                REAL *onehot = x + (int64_t)r * X + H;                                            \
                memset(onehot, 0, sizeof(REAL) * V);                                              \
                onehot[v[r]] = 1;                                                                 \
            }                                                                                     \
            for (int k = 0; k < K; k++)                                                           \
                mm_##SUFFIX(gemm, B, H4, X, x + (int64_t)k * B * X, X, W + (int64_t)k * X * H4,   \
                            0, a + (int64_t)k * B * H4);                                          \
        } else {                                      /* P[v_t], then + h_{t-1} W_h^T */          \
            for (int r = 0; r < R; r++)                                                           \
                memcpy(a + (int64_t)r * H4, table + v[r] * H4, sizeof(REAL) * H4);                \
            if (t > 0)                                                                            \
                for (int k = 0; k < K; k++)                                                       \
                    mm_##SUFFIX(gemm, B, H4, X, x + (int64_t)k * B * X, X,                        \
                                W + (int64_t)k * X * H4, 1, a + (int64_t)k * B * H4);             \
        }                                                                                         \
        for (int r = 0; r < R; r++) {                                                             \
            REAL *ar = a + (int64_t)r * H4, *gcr = gc + (int64_t)r * 2 * H;                       \
            REAL *tcr = tc + (int64_t)r * H;                                                      \
            REAL *c = gc_next ? gc_next + (int64_t)r * 2 * H + H : c_last + (int64_t)r * H;       \
            REAL *h = x_next ? x_next + (int64_t)r * X : h_last + (int64_t)r * H;                 \
            const REAL m = mask ? mask[(int64_t)t * R + r] : 1;                                   \
            _Pragma("omp simd")                                                                   \
            for (int j = 0; j < H; j++) {                                                         \
                REAL g = 2 / (1 + EXP(-2 * ar[j])) - 1;                                           \
                REAL i = 1 / (1 + EXP(-ar[H + j]));                                               \
                REAL f = 1 / (1 + EXP(-ar[2 * H + j]));                                           \
                REAL o = 1 / (1 + EXP(-ar[3 * H + j]));                                           \
                REAL cp = gcr[H + j];                                                             \
                REAL ct = (cp * f + g * i) * m;                                                   \
                REAL tct = 2 / (1 + EXP(-2 * ct)) - 1;                                            \
                REAL ht = tct * o;                                                                \
                gcr[j] = g; ar[H + j] = i; ar[2 * H + j] = f; ar[3 * H + j] = o;                  \
                ar[j] = o - ht * tct;                                                             \
                tcr[j] = tct; c[j] = ct; h[j] = ht;                                               \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    return 0;                                                                                     \
}                                                                                                 \
                                                                                                  \
void lstm_backward_##SUFFIX(int T, int K, int B, int H, const REAL *W_h,                           \
                           const int64_t *gate_ptrs, const int64_t *gc_ptrs,                      \
                           const int64_t *tc_ptrs, REAL *dh, REAL *dcf, const REAL *mask,         \
                           void *gemm_ptr) {                                                      \
    GEMM_T gemm = (GEMM_T)gemm_ptr;                                                               \
    const int R = K * B, H4 = 4 * H;                                                              \
    memset(dcf, 0, sizeof(REAL) * R * H);             /* dc_{T+1} ⊙ f_{T+1} = 0 */                \
    for (int t = T - 1; t >= 0; t--) {                                                            \
        REAL *a = (REAL *)gate_ptrs[t], *gc = (REAL *)gc_ptrs[t], *tc = (REAL *)tc_ptrs[t];       \
        for (int r = 0; r < R; r++) {                                                             \
            REAL *ar = a + (int64_t)r * H4, *gcr = gc + (int64_t)r * 2 * H;                       \
            REAL *tcr = tc + (int64_t)r * H, *dhr = dh + (int64_t)r * H;                          \
            REAL *dcfr = dcf + (int64_t)r * H;                                                    \
            const REAL m = mask ? mask[(int64_t)t * R + r] : 1;                                   \
            _Pragma("omp simd")                                                                   \
            for (int j = 0; j < H; j++) {                                                         \
                REAL kt = ar[j], i = ar[H + j], f = ar[2 * H + j], o = ar[3 * H + j];             \
                REAL g = gcr[j], cp = gcr[H + j], d_h = dhr[j];                                   \
                REAL dc = (dcfr[j] + d_h * kt) * m;                                               \
                REAL di = dc * i;                                                                 \
                ar[j] = di * (1 - g * g);                                                         \
                ar[H + j] = dc * g * (1 - i) * i;                                                 \
                ar[2 * H + j] = dc * cp * (1 - f) * f;                                            \
                ar[3 * H + j] = d_h * tcr[j] * (1 - o) * o;                                       \
                dcfr[j] = dc * f;                                                                 \
            }                                                                                     \
        }                                                                                         \
        if (t > 0)                                    /* dh_{t-1} = dA_t W_h */                   \
            for (int k = 0; k < K; k++)                                                           \
                mm_##SUFFIX(gemm, B, H, H4, a + (int64_t)k * B * H4, H4,                          \
                            W_h + (int64_t)k * H4 * H, 0, dh + (int64_t)k * B * H);               \
    }                                                                                             \
}

DEFINE(f32, float, expf, gemm_f32)
DEFINE(f64, double, exp, gemm_f64)
