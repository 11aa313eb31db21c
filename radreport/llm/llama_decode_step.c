/* One decode step of a Llama-architecture model, for a batch of rows with their own KV
 * caches: the kernel behind radreport.llm.native_generate. Matrices in fp32 or bfloat16,
 * arithmetic in fp32.
 *
 * Why hand-written: a batch-1 decode step reads every weight once, so its speed is the rate
 * at which the matrix-vector products stream weights from memory. On the AMD hosts we
 * measured, the libraries' decoders (PyTorch, ONNX Runtime's MLAS, OpenBLAS, CTranslate2,
 * OpenVINO, llama.cpp) streamed at 35-86 % of a plain memory copy; plain wide-vector
 * products stream at about the copy's rate (benchmarks/results/generation.md). Everything
 * else a step does (norms, rotary, attention over the cache) runs in the same OpenMP region,
 * so threads are started once per step. Attention is small at batch 1 and short prompts; with
 * a batch of long prompts (IU X-Ray's, with retrieved examples, are 300-700 tokens) it is a
 * third of a step, so it keeps its vectors in registers and exponentiates with glibc's
 * vector expf.
 *
 * The arithmetic follows transformers' LlamaForCausalLM in fp32 (RMSNorm, rotate-half RoPE
 * from the model's own inverse frequencies, grouped-query attention, SiLU-gated MLP); only
 * the order of additions differs. Compiled with the machine's C compiler at first use.
 */
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* 16 floats: one AVX-512 register where the CPU has them, two AVX2 ones elsewhere. */
typedef float vec16 __attribute__((vector_size(64)));
typedef float vec16_unaligned __attribute__((vector_size(64), aligned(4)));
#define LANES 16
#define ROWS_AT_ONCE 4

enum { WQ, WK, WV, WO, WGATE, WUP, WDOWN, ATTN_NORM, MLP_NORM, TENSORS_PER_LAYER };

typedef struct {
    int layers, hidden, heads, kv_heads, head_dim, intermediate, vocab;
    float norm_eps, rope_scaling;
    /* 1: the matrices (projections, embedding, LM head) are bfloat16, read as fp32 values
     * (a bfloat16 is the top half of a float); half the bytes per decode step. Norm weights
     * are always fp32. */
    int bf16_matrices;
    /* 1 (with bf16_matrices, where the CPU has AVX-512 BF16): the products' inputs are
     * rounded to bfloat16 too and multiplied pairwise by the CPU's bf16 dot-product
     * instruction, summed in fp32, as PyTorch's bf16 autocast computes them; twice the
     * products per instruction and no widening of the weights, which is what bounds a batch's
     * step. Every matrix product of every step, so a row's result does not depend on its
     * batch. */
    int bf16_activations;
    int threads; /* OpenMP threads for a step; 0: the runtime's default (all cores) */
    /* How far ahead (bytes) a batch-1 step asks for the weights it streams; 0: no software
     * prefetch. It helped a little on the Intel host we measured and cost a fifth of the
     * speed on the AMD ones, so the caller measures both on its machine (NativeLlama). */
    int prefetch_bytes;
    const void *embed;       /* [vocab, hidden] */
    const float *final_norm; /* [hidden] */
    const void *lm_head;     /* [vocab, hidden]; the embedding itself when tied */
    const float *inv_freq;   /* [head_dim / 2] */
    const void *const *layer_tensors; /* [layers * TENSORS_PER_LAYER] */
} llama_model;

typedef unsigned short bf16;
typedef bf16 bf16x16_unaligned __attribute__((vector_size(32), aligned(2)));
typedef unsigned int u32x16 __attribute__((vector_size(64)));

static inline vec16 load16(const float *p) { return *(const vec16_unaligned *)p; }

static inline vec16 load16_bf16(const bf16 *p) {
#ifdef __AVX512F__
    /* One widening load and one shift; GCC lowers the generic conversion below to four
     * instructions on AVX-512 hosts. */
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return (vec16)_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
#else
    u32x16 wide = __builtin_convertvector(*(const bf16x16_unaligned *)p, u32x16) << 16;
    return (vec16)wide;
#endif
}

static inline float bf16_value(bf16 h) {
    union { unsigned int bits; float value; } word = {.bits = (unsigned int)h << 16};
    return word.value;
}

typedef float vec8 __attribute__((vector_size(32)));
typedef float vec4 __attribute__((vector_size(16)));

/* A pairwise (tree) sum: four vector additions. A loop over the lanes is a chain of fifteen
 * dependent scalar additions, which the compiler may not reorder; in the batched products
 * and the attention, whose dot products are short, that chain cost more than the products. */
static inline float sum16(vec16 v) {
    vec8 s8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
              + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    vec4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static inline float dot(const float *a, const float *b, int n) {
    int full = n - n % LANES;
    vec16 total = {0};
    for (int i = 0; i < full; i += LANES) total += load16(a + i) * load16(b + i);
    float sum = sum16(total);
    for (int i = full; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* Four consecutive 16-float chunks of one weight row w against x, from column i, into four
 * accumulators (independent additions, so the FMAs overlap). */
#define FOUR_CHUNKS(LOADW)                                                                     \
    do {                                                                                       \
        a0 += LOADW(w + i) * load16(x + i);                                                    \
        a1 += LOADW(w + i + LANES) * load16(x + i + LANES);                                    \
        a2 += LOADW(w + i + 2 * LANES) * load16(x + i + 2 * LANES);                            \
        a3 += LOADW(w + i + 3 * LANES) * load16(x + i + 3 * LANES);                            \
    } while (0)

/* y[b, r] (+)= W[r, :] . x[b, :] for weight rows [r0, r1) and every batch row b, one function
 * per weight type. Four weight rows at a time: four independent streams keep the memory
 * system busy, and each loaded x chunk serves four rows; two batch rows at a time, so each
 * weight chunk loaded serves eight products. */
#define DEFINE_MATVEC_ROWS(NAME, WTYPE, LOADW, VALUE)                                          \
static void NAME(const WTYPE *W, int in, int r0, int r1, const float *x, int batch, float *y,  \
                 int out, int accumulate, int prefetch_bytes) {                                \
    int full = in - in % LANES;                                                                \
    int r = r0;                                                                                \
    if (batch == 1) {                                                                          \
        /* One row after another: a single linear stream, which the memory system serves     \
         * faster than four interleaved ones (bfloat16 above all); prefetched ahead where    \
         * that helps (see llama_model.prefetch_bytes). */                                    \
        int wide = in - in % (4 * LANES);                                                      \
        for (; r < r1; r++) {                                                                  \
            const WTYPE *w = W + (size_t)r * in;                                               \
            vec16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                      \
            int i = 0;                                                                         \
            if (prefetch_bytes > 0) {                                                          \
                for (; i < wide; i += 4 * LANES) {                                             \
                    __builtin_prefetch((const char *)(w + i) + prefetch_bytes);                \
                    __builtin_prefetch((const char *)(w + i) + prefetch_bytes + 64);           \
                    FOUR_CHUNKS(LOADW);                                                        \
                }                                                                              \
            } else {                                                                           \
                for (; i < wide; i += 4 * LANES) FOUR_CHUNKS(LOADW);                           \
            }                                                                                  \
            for (; i < full; i += LANES) a0 += LOADW(w + i) * load16(x + i);                   \
            float sum = sum16((a0 + a1) + (a2 + a3));                                          \
            for (; i < in; i++) sum += VALUE(w[i]) * x[i];                                     \
            y[r] = accumulate ? y[r] + sum : sum;                                              \
        }                                                                                      \
        return;                                                                                \
    }                                                                                          \
    for (; r + ROWS_AT_ONCE <= r1; r += ROWS_AT_ONCE) {                                        \
        const WTYPE *w0 = W + (size_t)r * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;     \
        int b = 0;                                                                             \
        for (; b + 2 <= batch; b += 2) {                                                       \
            const float *xa = x + (size_t)b * in, *xb = xa + in;                               \
            vec16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}; \
            for (int i = 0; i < full; i += LANES) {                                            \
                vec16 u = load16(xa + i), v = load16(xb + i);                                  \
                vec16 v0 = LOADW(w0 + i), v1 = LOADW(w1 + i), v2 = LOADW(w2 + i), v3 = LOADW(w3 + i); \
                a0 += v0 * u; a1 += v1 * u; a2 += v2 * u; a3 += v3 * u;                        \
                c0 += v0 * v; c1 += v1 * v; c2 += v2 * v; c3 += v3 * v;                        \
            }                                                                                  \
            float s[8] = {sum16(a0), sum16(a1), sum16(a2), sum16(a3),                          \
                          sum16(c0), sum16(c1), sum16(c2), sum16(c3)};                         \
            for (int i = full; i < in; i++) {                                                  \
                s[0] += VALUE(w0[i]) * xa[i]; s[1] += VALUE(w1[i]) * xa[i];                    \
                s[2] += VALUE(w2[i]) * xa[i]; s[3] += VALUE(w3[i]) * xa[i];                    \
                s[4] += VALUE(w0[i]) * xb[i]; s[5] += VALUE(w1[i]) * xb[i];                    \
                s[6] += VALUE(w2[i]) * xb[i]; s[7] += VALUE(w3[i]) * xb[i];                    \
            }                                                                                  \
            for (int k = 0; k < 2; k++) {                                                      \
                float *yb = y + (size_t)(b + k) * out + r;                                     \
                for (int j = 0; j < 4; j++) yb[j] = accumulate ? yb[j] + s[4 * k + j] : s[4 * k + j]; \
            }                                                                                  \
        }                                                                                      \
        for (; b < batch; b++) {                                                               \
            const float *xb = x + (size_t)b * in;                                              \
            vec16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                      \
            for (int i = 0; i < full; i += LANES) {                                            \
                vec16 xv = load16(xb + i);                                                     \
                a0 += LOADW(w0 + i) * xv;                                                      \
                a1 += LOADW(w1 + i) * xv;                                                      \
                a2 += LOADW(w2 + i) * xv;                                                      \
                a3 += LOADW(w3 + i) * xv;                                                      \
            }                                                                                  \
            float s[4] = {sum16(a0), sum16(a1), sum16(a2), sum16(a3)};                         \
            for (int i = full; i < in; i++) {                                                  \
                s[0] += VALUE(w0[i]) * xb[i]; s[1] += VALUE(w1[i]) * xb[i];                    \
                s[2] += VALUE(w2[i]) * xb[i]; s[3] += VALUE(w3[i]) * xb[i];                    \
            }                                                                                  \
            float *yb = y + (size_t)b * out + r;                                               \
            for (int j = 0; j < 4; j++) yb[j] = accumulate ? yb[j] + s[j] : s[j];              \
        }                                                                                      \
    }                                                                                          \
    for (; r < r1; r++) {                                                                      \
        const WTYPE *w = W + (size_t)r * in;                                                   \
        for (int b = 0; b < batch; b++) {                                                      \
            const float *xb = x + (size_t)b * in;                                              \
            float s = 0.0f;                                                                    \
            for (int i = 0; i < in; i++) s += VALUE(w[i]) * xb[i];                             \
            y[(size_t)b * out + r] = accumulate ? y[(size_t)b * out + r] + s : s;              \
        }                                                                                      \
    }                                                                                          \
}

#define FLOAT_VALUE(w) (w)
DEFINE_MATVEC_ROWS(matvec_rows_f32, float, load16, FLOAT_VALUE)
DEFINE_MATVEC_ROWS(matvec_rows_bf16, bf16, load16_bf16, bf16_value)

/* The threads a step uses when the model asks for 0 (all): the OpenMP default, which
 * OMP_NUM_THREADS and torch.set_num_threads set (the kernel shares PyTorch's libgomp). */
int llama_default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* 1 where this build computes bfloat16 products (llama_model.bf16_activations). */
int llama_has_bf16_products(void) {
#ifdef __AVX512BF16__
    return 1;
#else
    return 0;
#endif
}

#ifdef __AVX512BF16__
/* WR weight rows [r, r + WR) against BR rounded input rows [b, b + BR): y[b + j, r + k] (+)=
 * W[r + k, :] . xh[b + j, :]. 32 bfloat16 pairs per instruction; the last partial chunk is
 * loaded under a mask. WR and BR are constants once inlined. */
static inline __attribute__((always_inline)) void dpbf16_block(
    const int WR, const int BR, const bf16 *W, int in, int r, const bf16 *xh, int b, float *y,
    int out, int accumulate, int prefetch_bytes) {
    __m512 acc[4][4];
    for (int k = 0; k < WR; k++)
        for (int j = 0; j < BR; j++) acc[k][j] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= in; i += 32) {
        __m512bh w[4], x[4];
        for (int k = 0; k < WR; k++) {
            const bf16 *row = W + (size_t)(r + k) * in + i;
            if (prefetch_bytes > 0) _mm_prefetch((const char *)row + prefetch_bytes, _MM_HINT_T0);
            w[k] = (__m512bh)_mm512_loadu_si512(row);
        }
        for (int j = 0; j < BR; j++) x[j] = (__m512bh)_mm512_loadu_si512(xh + (size_t)(b + j) * in + i);
        for (int k = 0; k < WR; k++)
            for (int j = 0; j < BR; j++) acc[k][j] = _mm512_dpbf16_ps(acc[k][j], w[k], x[j]);
    }
    if (i < in) {
        __mmask32 mask = (__mmask32)((1ull << (in - i)) - 1);
        __m512bh w[4], x[4];
        for (int k = 0; k < WR; k++)
            w[k] = (__m512bh)_mm512_maskz_loadu_epi16(mask, W + (size_t)(r + k) * in + i);
        for (int j = 0; j < BR; j++)
            x[j] = (__m512bh)_mm512_maskz_loadu_epi16(mask, xh + (size_t)(b + j) * in + i);
        for (int k = 0; k < WR; k++)
            for (int j = 0; j < BR; j++) acc[k][j] = _mm512_dpbf16_ps(acc[k][j], w[k], x[j]);
    }
    for (int j = 0; j < BR; j++)
        for (int k = 0; k < WR; k++) {
            float sum = _mm512_reduce_add_ps(acc[k][j]), *target = y + (size_t)(b + j) * out + r + k;
            *target = accumulate ? *target + sum : sum;
        }
}

/* matvec_rows with bfloat16 inputs: blocks of 4 weight rows x 4 input rows (16 sums in
 * registers, each loaded chunk used four times); at batch 1, one weight row at a time, a
 * single linear stream as in matvec_rows. */
static void matvec_rows_dpbf16(const bf16 *W, int in, int r0, int r1, const bf16 *xh, int batch,
                               float *y, int out, int accumulate, int prefetch_bytes) {
    if (batch == 1) {
        for (int r = r0; r < r1; r++) dpbf16_block(1, 1, W, in, r, xh, 0, y, out, accumulate, prefetch_bytes);
        return;
    }
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        int b = 0;
        for (; b + 4 <= batch; b += 4) dpbf16_block(4, 4, W, in, r, xh, b, y, out, accumulate, 0);
        for (; b < batch; b++) dpbf16_block(4, 1, W, in, r, xh, b, y, out, accumulate, 0);
    }
    for (; r < r1; r++)
        for (int b = 0; b < batch; b++) dpbf16_block(1, 1, W, in, r, xh, b, y, out, accumulate, 0);
}
#endif

/* Rounds x[0, n) to bfloat16 (to nearest, ties to even), the inputs of bf16 products. */
static void round_to_bf16(const float *x, bf16 *xh, int n) {
    for (int i = 0; i < n; i++) {
        union { float value; unsigned int bits; } word = {.value = x[i]};
        word.bits += 0x7FFFu + ((word.bits >> 16) & 1u);
        xh[i] = (bf16)(word.bits >> 16);
    }
}

/* y (+)= W x for weight rows [r0, r1); xh: x rounded to bfloat16 (NULL: fp32 products). */
static void matvec_rows(const llama_model *m, const void *W, int in, int r0, int r1,
                        const float *x, const bf16 *xh, int batch, float *y, int out,
                        int accumulate) {
    int ahead = m->prefetch_bytes;
#ifdef __AVX512BF16__
    if (xh != NULL) {
        matvec_rows_dpbf16(W, in, r0, r1, xh, batch, y, out, accumulate, ahead);
        return;
    }
#else
    (void)xh;
#endif
    if (m->bf16_matrices) matvec_rows_bf16(W, in, r0, r1, x, batch, y, out, accumulate, ahead);
    else matvec_rows_f32(W, in, r0, r1, x, batch, y, out, accumulate, ahead);
}

/* This thread's share of the rows [0, out), in whole blocks of ROWS_AT_ONCE. */
static void my_rows(int out, int *r0, int *r1) {
    int thread = 0, threads = 1;
#ifdef _OPENMP
    thread = omp_get_thread_num();
    threads = omp_get_num_threads();
#endif
    int blocks = (out + ROWS_AT_ONCE - 1) / ROWS_AT_ONCE;
    int start = (int)((long)blocks * thread / threads), end = (int)((long)blocks * (thread + 1) / threads);
    *r0 = start * ROWS_AT_ONCE;
    *r1 = end * ROWS_AT_ONCE < out ? end * ROWS_AT_ONCE : out;
}

/* Called inside the parallel region; no barrier at the end (callers add one). */
static void matvec(const llama_model *m, const void *W, int in, int out, const float *x,
                   const bf16 *xh, int batch, float *y, int accumulate) {
    int r0, r1;
    my_rows(out, &r0, &r1);
    if (r0 < r1) matvec_rows(m, W, in, r0, r1, x, xh, batch, y, out, accumulate);
}

static void rms_norm(const float *x, const float *weight, int n, float eps, float *out) {
    float squares = 0.0f;
    for (int i = 0; i < n; i++) squares += x[i] * x[i];
    float scale = 1.0f / sqrtf(squares / n + eps);
    for (int i = 0; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

/* transformers' rotate-half RoPE: pairs (i, i + half) turn by position * inv_freq[i]. */
static void rotate(float *v, int head_dim, const float *cosines, const float *sines) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * cosines[i] - b * sines[i];
        v[i + half] = b * cosines[i] + a * sines[i];
    }
}

/* What a step knows of its rows' positions and caches (see llama_decode_step). */
typedef struct {
    const int *positions;
    const float *const *prefix_keys, *const *prefix_values;
    const int *prefix_lengths;
    float *const *k_caches, *const *v_caches;
    const int *capacities;
} step_rows;

#if defined(__GLIBC__) && defined(__x86_64__)
/* glibc's vector expf (libmvec, which -lm links on x86-64): declaring expf's SIMD variants
 * lets the loop below call it on 8 or 16 scores at a time. A step computes
 * heads x positions exponentials per row and layer, and the scalar expf was a large part of
 * the attention's time with long prompts. */
extern float expf(float) __attribute__((simd("notinbranch")));
#endif

/* scores[t] = exp(scores[t] - highest) for t < n; returns their sum. */
static float exponentiate(float *scores, int n, float highest) {
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int t = 0; t < n; t++) {
        scores[t] = expf(scores[t] - highest);
        total += scores[t];
    }
    return total;
}

#define MAX_HEAD_CHUNKS 8 /* head_dims kept in registers: 64 (SmolLM2) and 128 (Llama 3) */

/* Softmax attention of one query over its cached keys and values, given as two parts (the
 * prompt's prefix and the row's own positions); the query, the output and the running sums
 * stay in registers, so a cached key or value costs its loads and D / 16 FMAs. head_dim is a
 * constant here (the function is inlined into callers for each supported size). */
static inline __attribute__((always_inline)) void attend_query(
    const int D, const float *query, const float *const keys[2], const float *const values[2],
    const int lengths[2], float scale, float *row_scores, float *out) {
    const int chunks = D / LANES;
    vec16 q[MAX_HEAD_CHUNKS], acc[MAX_HEAD_CHUNKS];
    for (int c = 0; c < chunks; c++) q[c] = load16(query + c * LANES);
    float highest = -INFINITY;
    for (int part = 0, t0 = 0; part < 2; t0 += lengths[part], part++)
        for (int t = 0; t < lengths[part]; t++) {
            const float *key = keys[part] + (size_t)t * D;
            vec16 sum = q[0] * load16(key);
            for (int c = 1; c < chunks; c++) sum += q[c] * load16(key + c * LANES);
            float score = sum16(sum) * scale;
            row_scores[t0 + t] = score;
            highest = score > highest ? score : highest;
        }
    float total = exponentiate(row_scores, lengths[0] + lengths[1], highest);
    for (int c = 0; c < chunks; c++) acc[c] = (vec16){0};
    for (int part = 0, t0 = 0; part < 2; t0 += lengths[part], part++)
        for (int t = 0; t < lengths[part]; t++) {
            const float *value = values[part] + (size_t)t * D;
            vec16 weight = (vec16){0} + row_scores[t0 + t] / total;
            for (int c = 0; c < chunks; c++) acc[c] += weight * load16(value + c * LANES);
        }
    for (int c = 0; c < chunks; c++) *(vec16_unaligned *)(out + c * LANES) = acc[c];
}

/* The same for any head_dim, without keeping the vectors in registers. */
static void attend_query_any(int D, const float *query, const float *const keys[2],
                             const float *const values[2], const int lengths[2], float scale,
                             float *row_scores, float *out) {
    float highest = -INFINITY;
    for (int part = 0, t0 = 0; part < 2; t0 += lengths[part], part++)
        for (int t = 0; t < lengths[part]; t++) {
            float score = dot(query, keys[part] + (size_t)t * D, D) * scale;
            row_scores[t0 + t] = score;
            highest = score > highest ? score : highest;
        }
    float total = exponentiate(row_scores, lengths[0] + lengths[1], highest);
    for (int i = 0; i < D; i++) out[i] = 0.0f;
    for (int part = 0, t0 = 0; part < 2; t0 += lengths[part], part++)
        for (int t = 0; t < lengths[part]; t++) {
            float weight = row_scores[t0 + t] / total;
            const float *value = values[part] + (size_t)t * D;
            for (int i = 0; i < D; i++) out[i] += weight * value[i];
        }
}

/* Attention of query head h for rows [first, last), which share one prompt prefix (MBR's
 * candidates of one prompt). One thread takes them all, one after another, so the prefix's
 * keys and values for this head, read from memory by the first row, are in its cache for
 * the others. */
static void attend(const llama_model *m, const step_rows *rows, int layer, int h, int first,
                   int last, float *q, const float *rope, float *scores, int longest,
                   float *attended) {
    const int D = m->head_dim, q_width = m->heads * D, group = m->heads / m->kv_heads;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t head_slot = (size_t)layer * m->kv_heads + h / group;
    for (int b = first; b < last; b++) {
        float *query = q + (size_t)b * q_width + (size_t)h * D;
        const float *cosines = rope + (size_t)b * D;
        rotate(query, D, cosines, cosines + D / 2);
        int prefix = rows->prefix_lengths[b], capacity = rows->capacities[b];
        const float *keys[2] = {rows->prefix_keys[b] + head_slot * prefix * D,
                                rows->k_caches[b] + head_slot * capacity * D};
        const float *values[2] = {rows->prefix_values[b] + head_slot * prefix * D,
                                  rows->v_caches[b] + head_slot * capacity * D};
        /* own positions, the new one included */
        const int lengths[2] = {prefix, rows->positions[b] + 1 - prefix};
        float *row_scores = scores + ((size_t)b * m->heads + h) * longest;
        float *out = attended + (size_t)b * q_width + (size_t)h * D;
        if (D == 64) attend_query(64, query, keys, values, lengths, scale, row_scores, out);
        else if (D == 128) attend_query(128, query, keys, values, lengths, scale, row_scores, out);
        else attend_query_any(D, query, keys, values, lengths, scale, row_scores, out);
    }
}

/* One step for `batch` rows. Row b feeds token tokens[b] at position positions[b] and gets
 * its next-token logits in logits[b, :]. Its keys and values so far are in two caches, each
 * [layers, kv_heads, length, head_dim]: a prefix (the prompt's, prefix_lengths[b] positions,
 * read only and shareable between rows, as MBR's candidates of one prompt share it) and its
 * own (capacities[b] positions for what it wrote; position p is at p - prefix_lengths[b]).
 * The step writes position positions[b] into the row's own caches. Returns 0, or -1 when
 * memory runs out. */
int llama_decode_step(const llama_model *m, int batch, const int *tokens, const int *positions,
                      const float *const *prefix_keys, const float *const *prefix_values,
                      const int *prefix_lengths, float *const *k_caches, float *const *v_caches,
                      const int *capacities, float *logits) {
    const int H = m->hidden, D = m->head_dim, I = m->intermediate;
    const int q_width = m->heads * D, kv_width = m->kv_heads * D;
    int longest = 0;
    for (int b = 0; b < batch; b++) longest = positions[b] + 1 > longest ? positions[b] + 1 : longest;
    /* One allocation for the step: the fp32 buffers; the runs of rows sharing a prompt
     * prefix (run r is rows [run_first[r], run_first[r + 1])); and, with bf16 products, the
     * products' inputs rounded to bfloat16: [batch, max(H, q_width)] for the normed rows and
     * the attention's output, and the MLP's [batch, I] apart (each thread rounds its share
     * of it while the others still read the normed rows). */
    const int rounded_width = H > q_width ? H : q_width;
    size_t floats = (size_t)batch * (2 * H + q_width + 2 * kv_width + q_width + 2 * I + D)
                    + (size_t)batch * m->heads * longest;
    size_t bf16s = m->bf16_activations ? (size_t)batch * (rounded_width + I) : 0;
    float *scratch = malloc(floats * sizeof(float) + (batch + 1) * sizeof(int) + bf16s * sizeof(bf16));
    if (scratch == NULL) return -1;
    float *x = scratch;                                  /* residual stream [batch, H] */
    float *normed = x + (size_t)batch * H;               /* [batch, H] */
    float *q = normed + (size_t)batch * H;               /* [batch, q_width] */
    float *k = q + (size_t)batch * q_width;              /* [batch, kv_width] */
    float *v = k + (size_t)batch * kv_width;             /* [batch, kv_width] */
    float *attended = v + (size_t)batch * kv_width;      /* [batch, q_width] */
    float *gate = attended + (size_t)batch * q_width;    /* [batch, I] */
    float *up = gate + (size_t)batch * I;                /* [batch, I] */
    float *rope = up + (size_t)batch * I;                /* [batch, D]: cos | sin */
    float *scores = rope + (size_t)batch * D;            /* [batch, heads, longest] */
    int *run_first = (int *)(scratch + floats), runs = 0; /* [batch + 1] */
    bf16 *rounded = bf16s ? (bf16 *)(run_first + batch + 1) : NULL;
    bf16 *rounded_mlp = bf16s ? rounded + (size_t)batch * rounded_width : NULL;
    for (int b = 0; b < batch; b++)
        if (b == 0 || prefix_keys[b] != prefix_keys[b - 1] || prefix_values[b] != prefix_values[b - 1]
            || prefix_lengths[b] != prefix_lengths[b - 1])
            run_first[runs++] = b;
    run_first[runs] = batch;
    const step_rows rows = {positions, prefix_keys, prefix_values, prefix_lengths,
                            k_caches, v_caches, capacities};

    for (int b = 0; b < batch; b++) {
        float *row = x + (size_t)b * H;
        if (m->bf16_matrices) {
            const bf16 *embedding = (const bf16 *)m->embed + (size_t)tokens[b] * H;
            for (int i = 0; i < H; i++) row[i] = bf16_value(embedding[i]);
        } else {
            memcpy(row, (const float *)m->embed + (size_t)tokens[b] * H, H * sizeof(float));
        }
        for (int i = 0; i < D / 2; i++) {
            /* fp32 product then cos/sin, as transformers computes them */
            float angle = (float)positions[b] * m->inv_freq[i];
            rope[(size_t)b * D + i] = cosf(angle) * m->rope_scaling;
            rope[(size_t)b * D + D / 2 + i] = sinf(angle) * m->rope_scaling;
        }
    }

#ifdef _OPENMP
    int threads = m->threads > 0 ? m->threads : omp_get_max_threads();
#endif
#pragma omp parallel num_threads(threads)
    {
        for (int layer = 0; layer < m->layers; layer++) {
            const void *const *w = m->layer_tensors + (size_t)layer * TENSORS_PER_LAYER;
#pragma omp for
            for (int b = 0; b < batch; b++) {
                rms_norm(x + (size_t)b * H, (const float *)w[ATTN_NORM], H, m->norm_eps, normed + (size_t)b * H);
                if (rounded) round_to_bf16(normed + (size_t)b * H, rounded + (size_t)b * H, H);
            }
            matvec(m, w[WQ], H, q_width, normed, rounded, batch, q, 0);
            matvec(m, w[WK], H, kv_width, normed, rounded, batch, k, 0);
            matvec(m, w[WV], H, kv_width, normed, rounded, batch, v, 0);
#pragma omp barrier
            /* Rotary on the new keys, then append them and the values to the caches. */
#pragma omp for
            for (int b = 0; b < batch; b++) {
                const float *cosines = rope + (size_t)b * D, *sines = cosines + D / 2;
                for (int h = 0; h < m->kv_heads; h++) {
                    float *key = k + (size_t)b * kv_width + (size_t)h * D;
                    rotate(key, D, cosines, sines);
                    int own = positions[b] - prefix_lengths[b];
                    size_t slot = (((size_t)layer * m->kv_heads + h) * capacities[b] + own) * D;
                    memcpy(k_caches[b] + slot, key, D * sizeof(float));
                    memcpy(v_caches[b] + slot, v + (size_t)b * kv_width + (size_t)h * D,
                           D * sizeof(float));
                }
            }
            /* Attention, one query head of one run of rows sharing a prompt prefix at a time. */
#pragma omp for collapse(2)
            for (int run = 0; run < runs; run++)
                for (int h = 0; h < m->heads; h++)
                    attend(m, &rows, layer, h, run_first[run], run_first[run + 1], q, rope,
                           scores, longest, attended);
            if (rounded) {
#pragma omp for
                for (int b = 0; b < batch; b++)
                    round_to_bf16(attended + (size_t)b * q_width, rounded + (size_t)b * q_width, q_width);
            }
            matvec(m, w[WO], q_width, H, attended, rounded, batch, x, 1); /* the residual add, fused */
#pragma omp barrier
#pragma omp for
            for (int b = 0; b < batch; b++) {
                rms_norm(x + (size_t)b * H, (const float *)w[MLP_NORM], H, m->norm_eps, normed + (size_t)b * H);
                if (rounded) round_to_bf16(normed + (size_t)b * H, rounded + (size_t)b * H, H);
            }
            {
                int r0, r1;
                my_rows(I, &r0, &r1);
                if (r0 < r1) {
                    matvec_rows(m, w[WGATE], H, r0, r1, normed, rounded, batch, gate, I, 0);
                    matvec_rows(m, w[WUP], H, r0, r1, normed, rounded, batch, up, I, 0);
                    for (int b = 0; b < batch; b++) {
                        for (int r = r0; r < r1; r++) {
                            float g = gate[(size_t)b * I + r];
                            gate[(size_t)b * I + r] = g / (1.0f + expf(-g)) * up[(size_t)b * I + r];
                        }
                        if (rounded)
                            round_to_bf16(gate + (size_t)b * I + r0, rounded_mlp + (size_t)b * I + r0, r1 - r0);
                    }
                }
            }
#pragma omp barrier
            matvec(m, w[WDOWN], I, H, gate, rounded_mlp, batch, x, 1);
#pragma omp barrier
        }
#pragma omp for
        for (int b = 0; b < batch; b++) {
            rms_norm(x + (size_t)b * H, m->final_norm, H, m->norm_eps, normed + (size_t)b * H);
            if (rounded) round_to_bf16(normed + (size_t)b * H, rounded + (size_t)b * H, H);
        }
        matvec(m, m->lm_head, H, m->vocab, normed, rounded, batch, logits, 0);
    }
    free(scratch);
    return 0;
}
