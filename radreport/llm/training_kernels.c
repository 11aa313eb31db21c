/* Fused elementwise steps of a Llama for training on CPU: RMSNorm and the SiLU-gated
 * product of the MLP, forward and backward, and the LM head's cross-entropy over a chunk of
 * logits, in bfloat16 or fp32 with fp32 arithmetic. The kernels behind
 * radreport.llm.fused_rms_norm, radreport.llm.fused_swiglu and
 * radreport.llm.chunked_head_loss.
 *
 * Why hand-written: in PyTorch each of these is a chain of separate passes over the
 * activations (RMSNorm: a cast up, square, mean, reciprocal root, product, cast down, the
 * weight's product, and as many again backward); on a 2-core CPU training a 576-wide model,
 * eager RMSNorm took a fifth as long as the products of a step. Here each is one pass forward
 * and one backward (RMSNorm reads a row twice while it is in cache). The SiLU-gated kernels
 * are no faster than eager PyTorch (their exponential keeps them compute-bound); they save
 * the activation eager autograd keeps for the backward.
 *
 * Every result is rounded where PyTorch's eager chain rounds it, so bfloat16 outputs equal
 * transformers' modules except where a sum's different order moves the last bit of a
 * row's norm. Compiled with the machine's C compiler at first use; `-mprefer-vector-width=512`
 * because GCC otherwise keeps these loops in 256-bit vectors on AVX-512 CPUs (the SiLU-gated
 * kernels took 1.3x as long).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float bf16_load(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, as PyTorch's c10::BFloat16; NaN stays a quiet NaN. */
static inline uint16_t bf16_store(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_round(float f) { return bf16_load(bf16_store(f)); }

static inline float f32_load(float v) { return v; }
static inline float f32_store(float f) { return f; }
static inline float f32_round(float f) { return f; }

/* exp(v) in straight-line arithmetic, so the loops vectorize without a vector math library:
 * v = n ln2 + f with |f| <= ln2 / 2, exp(f) by its degree-6 Taylor polynomial (relative error
 * under 2e-7, below fp32's own rounding of the sigmoid), 2^n through the exponent bits.
 * Beyond expf's range it gives what expf gives: infinity above, zero below. */
static inline float exp_approx(float v) {
    float x = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
    /* Adding and subtracting 1.5 * 2^23 rounds to the nearest integer. */
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float f = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f + f * (1.0f + f * (0.5f + f * (0.166666672f +
                    f * (0.0416666679f + f * (0.00833333377f + f * 0.00138888892f)))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float result = p * scale;
    result = v > 88.72f ? INFINITY : result;
    return v < -103.9f ? 0.0f : result;
}

static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

/* Elementwise loops run over blocks so that each thread's inner loop is a plain vector loop. */
#define BLOCK 4096

/* transformers' LlamaRMSNorm: n = x * rsqrt(mean(x^2) + eps) in fp32, rounded to x's dtype,
 * then y = weight * n in that dtype. The weight is frozen (LoRA training), so the backward
 * gives dx only: dx = rstd * (dn - n * mean(dn * n)), dn = dy * weight rounded as autograd
 * rounds it, n unrounded. rstd (one fp32 per row) is kept from the forward. */
#define RMS_NORM(SUFFIX, T, LOAD, STORE, ROUND)                                                \
    void rms_norm_forward_##SUFFIX(const T *x, const T *weight, T *y, float *rstd,           \
                                   int64_t rows, int64_t cols, float eps, int threads) {     \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                    \
        for (int64_t r = 0; r < rows; r++) {                                                 \
            const T *xr = x + r * cols;                                                      \
            T *yr = y + r * cols;                                                            \
            float total = 0.0f;                                                              \
            _Pragma("omp simd reduction(+ : total)")                                         \
            for (int64_t c = 0; c < cols; c++) {                                             \
                float v = LOAD(xr[c]);                                                       \
                total += v * v;                                                              \
            }                                                                                \
            float s = 1.0f / sqrtf(total / (float)cols + eps);                               \
            if (rstd) rstd[r] = s;                                                           \
            _Pragma("omp simd")                                                              \
            for (int64_t c = 0; c < cols; c++)                                               \
                yr[c] = STORE(LOAD(weight[c]) * ROUND(LOAD(xr[c]) * s));                     \
        }                                                                                    \
    }                                                                                        \
    void rms_norm_backward_##SUFFIX(const T *x, const T *weight, const float *rstd,          \
                                    const T *dy, T *dx, int64_t rows, int64_t cols,          \
                                    int threads) {                                           \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                    \
        for (int64_t r = 0; r < rows; r++) {                                                 \
            const T *xr = x + r * cols, *gr = dy + r * cols;                                 \
            T *dr = dx + r * cols;                                                           \
            float s = rstd[r], dot = 0.0f;                                                   \
            _Pragma("omp simd reduction(+ : dot)")                                           \
            for (int64_t c = 0; c < cols; c++)                                               \
                dot += ROUND(LOAD(gr[c]) * LOAD(weight[c])) * LOAD(xr[c]);                   \
            /* mean(dn * n) with n = x * s; the backward's x * m term is then n * mean. */   \
            float m = dot * s * s / (float)cols;                                             \
            _Pragma("omp simd")                                                              \
            for (int64_t c = 0; c < cols; c++) {                                             \
                float dn = ROUND(LOAD(gr[c]) * LOAD(weight[c]));                             \
                dr[c] = STORE((dn - LOAD(xr[c]) * m) * s);                                   \
            }                                                                                \
        }                                                                                    \
    }

/* h = silu(gate) * up, with silu(gate) rounded to the dtype first as F.silu returns it. The
 * backward recomputes the sigmoid instead of keeping silu(gate): du = dh * silu(gate),
 * dgate = (dh * up) * s * (1 + gate * (1 - s)) with s = sigmoid(gate), each product rounded
 * where autograd's multiply and silu_backward round. */
#define SWIGLU(SUFFIX, T, LOAD, STORE, ROUND)                                                  \
    void swiglu_forward_##SUFFIX(const T *gate, const T *up, T *out, int64_t n,              \
                                 int threads) {                                              \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                    \
        for (int64_t start = 0; start < n; start += BLOCK) {                                 \
            int64_t end = start + BLOCK < n ? start + BLOCK : n;                             \
            _Pragma("omp simd")                                                              \
            for (int64_t i = start; i < end; i++) {                                          \
                float g = LOAD(gate[i]);                                                     \
                out[i] = STORE(ROUND(g * sigmoid(g)) * LOAD(up[i]));                         \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    void swiglu_backward_##SUFFIX(const T *gate, const T *up, const T *dout, T *dgate,       \
                                  T *dup, int64_t n, int threads) {                          \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                    \
        for (int64_t start = 0; start < n; start += BLOCK) {                                 \
            int64_t end = start + BLOCK < n ? start + BLOCK : n;                             \
            _Pragma("omp simd")                                                              \
            for (int64_t i = start; i < end; i++) {                                          \
                float g = LOAD(gate[i]), d = LOAD(dout[i]), s = sigmoid(g);                  \
                dup[i] = STORE(d * ROUND(g * s));                                            \
                float ds = ROUND(d * LOAD(up[i]));                                           \
                dgate[i] = STORE(ds * s * (1.0f + g * (1.0f - s)));                          \
            }                                                                                \
        }                                                                                    \
    }

/* Cross-entropy of each row of logits against its target, with what TRL logs and the
 * gradient, in three passes over the row while it is in cache (a 49,152-word vocabulary is
 * 96 KB of bf16): the maximum and its first index; the sum of exp(z) and of exp(z) z with
 * z = logit - max; then, when grad is given, softmax - one-hot in the logits' dtype, which may
 * be the logits' own buffer. Per row: stats[3r] = log-sum-exp - target logit (the loss),
 * stats[3r + 1] = the entropy log(S) - sum(exp(z) z) / S, stats[3r + 2] = 1 when the first
 * maximum is the target. A NaN logit makes the row's maximum NaN (so its loss, entropy and
 * gradient are NaN, as PyTorch's) and its index the first NaN's, as torch.max's. The
 * target's gradient is (exp(z_t) - S) / S in fp32: p - 1 rounded from a bf16 p would lose
 * most of its digits. */
#define CROSS_ENTROPY(SUFFIX, T, LOAD, STORE)                                                  \
    void cross_entropy_rows_##SUFFIX(const T *logits, const int64_t *targets, T *grad,        \
                                     float *stats, int64_t rows, int64_t cols, int threads) { \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                    \
        for (int64_t r = 0; r < rows; r++) {                                                 \
            const T *lr = logits + r * cols;                                                 \
            float m = -INFINITY;                                                             \
            int nan = 0;                                                                     \
            _Pragma("omp simd reduction(max : m) reduction(| : nan)")                        \
            for (int64_t c = 0; c < cols; c++) {                                             \
                float v = LOAD(lr[c]);                                                       \
                nan |= v != v;                                                               \
                m = v > m ? v : m;                                                           \
            }                                                                                \
            int64_t first = 0;                                                               \
            if (nan) {                                                                       \
                m = NAN;                                                                     \
                while (LOAD(lr[first]) == LOAD(lr[first])) first++;                          \
            } else {                                                                         \
                while (LOAD(lr[first]) != m) first++;                                        \
            }                                                                                \
            float total = 0.0f, weighted = 0.0f;                                             \
            _Pragma("omp simd reduction(+ : total, weighted)")                               \
            for (int64_t c = 0; c < cols; c++) {                                             \
                float z = LOAD(lr[c]) - m, e = exp_approx(z);                                \
                total += e;                                                                  \
                weighted += e * z;                                                           \
            }                                                                                \
            int64_t t = targets[r];                                                          \
            float log_total = logf(total);                                                   \
            stats[3 * r] = log_total - (LOAD(lr[t]) - m);                                    \
            stats[3 * r + 1] = log_total - weighted / total;                                 \
            stats[3 * r + 2] = first == t ? 1.0f : 0.0f;                                     \
            if (!grad) continue;                                                             \
            T *gr = grad + r * cols;                                                         \
            float target_exp = exp_approx(LOAD(lr[t]) - m), inverse = 1.0f / total;          \
            _Pragma("omp simd")                                                              \
            for (int64_t c = 0; c < cols; c++)                                               \
                gr[c] = STORE(exp_approx(LOAD(lr[c]) - m) * inverse);                        \
            gr[t] = STORE((target_exp - total) * inverse);                                   \
        }                                                                                    \
    }

RMS_NORM(bf16, uint16_t, bf16_load, bf16_store, bf16_round)
RMS_NORM(f32, float, f32_load, f32_store, f32_round)
SWIGLU(bf16, uint16_t, bf16_load, bf16_store, bf16_round)
SWIGLU(f32, float, f32_load, f32_store, f32_round)
CROSS_ENTROPY(bf16, uint16_t, bf16_load, bf16_store)
CROSS_ENTROPY(f32, float, f32_load, f32_store)
