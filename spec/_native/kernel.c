/* gamir's native runtime: the spec's integers computed row by row, all layers fused.
 *
 * The model runs the way the accelerator streams it: every tensor lives in a ring of a few
 * rows (the line buffers), and a row of layer l is computed as soon as the rows it reads
 * exist (demand-driven from the last layer). Memory is rows x width per tensor, never a whole
 * frame per layer. A strip of output rows [r0, r1) is computed independently (its halo rows
 * recomputed), so threads take one strip each. spec/native.py prepares every constant (exact
 * Python integers, checked to fit the widths used here) and documents the arithmetic.
 *
 * Row formats (x is the pixel, columns padded by one replicated pixel on each side):
 *   bits  binary-conv input: byte [g][1 + x] holds a group of bits (1 = +1), the index of a
 *         table lookup (3-column sextets: [g][x], no padding). Nibbles (16-entry tables):
 *         channels 4g..4g+3 of pixel x, bit j = channel 4g+j. Sextets (64-entry tables, the
 *         avx512 build): for a 3x3 conv, channels 2g and 2g+1 at columns x-1, x, x+1 (bit
 *         3j+d = channel 2g+j at column x-1+d, so one lookup covers a window row's 3 columns
 *         of 2 channels); for a 1x1 conv, channels 6g..6g+5 of pixel x. The tensor says
 *         which (grp_ch channels, grp_cols columns).
 *   pairs fixed-conv input: int32 [p][1 + x] holds the values of channels 2p (low 16 bits)
 *         and 2p+1 (high 16 bits), what one pmaddwd lane multiplies.
 *   plain residual source: int16 [c][x].
 * Bits are held as the values a conv reads them as, -1/+1; a binary conv reads any tensor's
 * bit as value >= 0 (the spec's sign).
 *
 * Binary conv: m = number of window bits that differ from the weight bits (acc = N - m).
 * Per output channel and input group, a table gives the differing bits of that group; one
 * AVX2 vpshufb looks up 32 pixels' nibbles at once, one aarch64 NEON tbl 16, one AVX-512
 * vpermb 64 pixels' sextets (a 3x3 window of 40 channels: 60 sextets instead of 90 nibbles).
 * Fixed conv: int32 sum of int16 pairs times int16 weight pairs (vpmaddwd with AVX2).
 * Depthwise fixed conv (output channel c reads only input channel c): per channel, k*k
 * products of the int16 half of its pair, summed in int32 (plain C, vectorized by the compiler).
 *
 * Without them (other CPUs, or GK_GENERIC defined) the same loops run in plain C, for either
 * table format; every build is tested bit-exact against spec.reference (aarch64 ones under
 * qemu-user), the plain C one with both formats.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && !defined(GK_GENERIC)
#include <immintrin.h>
#define GK_AVX2 1
#else
#define GK_AVX2 0
#endif
#if GK_AVX2 && defined(__AVX512BW__) && defined(__AVX512VBMI__) && defined(__GFNI__)
#define GK_AVX512 1
#else
#define GK_AVX512 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON) && !defined(GK_GENERIC)
#include <arm_neon.h>
#define GK_NEON 1
#else
#define GK_NEON 0
#endif

#ifndef GK_SOURCE_HASH
#define GK_SOURCE_HASH "unknown"
#endif

enum { KIND_BINARY = 0, KIND_FIXED = 1, KIND_DEPTHWISE = 2 };
enum { OUT_THRESHOLD = 0, OUT_AFFINE = 1, OUT_PIXEL = 2 };
enum { GK_OK = 0, GK_ENOMEM = 1, GK_ERING = 2, GK_EARG = 3 };


/* Must match spec/native.py (_Layer, _Tensor). */
typedef struct {
    int32_t kind, kernel, c_in, c_out, output, residual, shift, out_lo, out_hi;
    int32_t n_in;             /* bit groups (binary) or channel pairs (fixed) of the input */
    int32_t c_out_pad;        /* c_out rounded up to 4 (fixed weight rows) */
    int32_t tab_bytes;        /* binary: bytes per table, 32 (16 nibble entries twice) or 64 */
    const uint8_t *tables;    /* binary: [c_out][window groups][tab_bytes] differing-bit
                                 counts; sextets: [c_out / 2][..][64], channel 2p in the low
                                 nibble, 2p + 1 in the high one */
    const int32_t *wpairs;    /* fixed: [c_out_pad][kernel*kernel*n_in] int16 weight pairs;
                                 depthwise: [c_out][kernel*kernel] weights */
    const int32_t *thr_m;     /* binary threshold: bit = (m <= thr_m) ^ flip */
    const int64_t *thr_acc;   /* fixed threshold: bit = (acc >= thr_acc) ^ flip */
    const uint8_t *flip;
    const int32_t *a32, *q32, *b32;  /* binary affine: q + ((m*a + b) >> s) */
    const double *fa, *fb;           /* fixed affine / pixel: floor((acc*fa + fb) * 2^-s) */
    const int32_t *rmap;             /* pixel: channel of tensor 0 added, or -1 */
    const int32_t *act_shift, *act_offset;  /* affine activation (NULL: none): see act() */
} gk_layer;

typedef struct {
    int32_t channels;
    int32_t radius_after;     /* rows this tensor must extend beyond the strip on each side */
    int32_t cap_bits, cap_pairs, cap_plain;  /* ring rows per format, 0 = not needed */
    int32_t grp_ch, grp_cols;  /* bits rows: channels and columns per byte (4, 1), (2, 3), (6, 1) */
} gk_tensor;

typedef struct {
    int32_t lo, hi, next;      /* rows [lo, hi) of this strip, next row to produce */
    uint8_t *bits;
    int32_t *pairs;
    int16_t *plain;
    int32_t *tag_bits, *tag_pairs, *tag_plain;  /* row held in each ring slot */
} tstate;

typedef struct {
    const gk_tensor *t;
    const gk_layer *l;
    int n_layers, h, w, sb;    /* sb: row stride in elements (padded, vector-friendly) */
    const uint8_t *x0;
    uint8_t *out;
    tstate *st;
    uint16_t *m;               /* binary conv counts [c_out][sb] */
    int32_t *acc;              /* fixed conv sums [c_out_pad][sb] */
    int16_t *val;              /* output values of one row [c_out][sb] (see emit) */
    int16_t *zeros;            /* a row of zeros: the residual of layers without one */
    uint8_t *centre;           /* one group's channels at each pixel (emit of sextets) */
    int err;
} gk_ctx;

const char *gk_source_hash(void) { return GK_SOURCE_HASH; }
/* Whether this CPU runs this build's vector instructions (NEON is part of every aarch64). */
int gk_cpu_ok(void) {
#if GK_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("gfni");
#elif GK_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 1;
#endif
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Output channel o's affine activation (spec.arith.prelu_shift, then the offset): negative
 * values y become (y + rnd) >> k, then o is added; without one, k = rnd = off = 0. */
typedef struct { int32_t k, rnd, off; } gk_act;

static inline gk_act act(const gk_layer *L, int o) {
    gk_act a = {0, 0, 0};
    if (L->act_shift) {
        a.k = L->act_shift[o];
        a.rnd = (1 << a.k) >> 1;
        a.off = L->act_offset[o];
    }
    return a;
}

/* ------------------------------------------------------------------------- ring rows */
static inline int bit_groups(const gk_tensor *t) {
    return (t->channels + t->grp_ch - 1) / t->grp_ch;
}

static uint8_t *bits_row(gk_ctx *c, int t, int y) {
    tstate *s = &c->st[t];
    int slot = y % c->t[t].cap_bits;
    if (s->tag_bits[slot] != y) c->err = GK_ERING;
    return s->bits + (size_t)slot * bit_groups(&c->t[t]) * c->sb;
}

static int32_t *pairs_row(gk_ctx *c, int t, int y) {
    tstate *s = &c->st[t];
    int slot = y % c->t[t].cap_pairs;
    if (s->tag_pairs[slot] != y) c->err = GK_ERING;
    return s->pairs + (size_t)slot * ((c->t[t].channels + 1) / 2) * c->sb;
}

static int16_t *plain_row(gk_ctx *c, int t, int y) {
    tstate *s = &c->st[t];
    int slot = y % c->t[t].cap_plain;
    if (s->tag_plain[slot] != y) c->err = GK_ERING;
    return s->plain + (size_t)slot * c->t[t].channels * c->sb;
}

/* Where row y of tensor t goes in its plain ring (the slot's old row is no longer read: the
 * ring holds every row still needed besides it). */
static int16_t *plain_slot(gk_ctx *c, int t, int y) {
    return c->st[t].plain + (size_t)(y % c->t[t].cap_plain) * c->t[t].channels * c->sb;
}

#if GK_AVX512
/* Whether each of 64 values from v is >= 0 (bit i: v[i]). */
static inline uint64_t ge0_bits(const int16_t *v) {
    __m512i z = _mm512_setzero_si512();
    uint64_t lo = _mm512_cmpge_epi16_mask(_mm512_loadu_si512((const void *)v), z);
    uint64_t hi = _mm512_cmpge_epi16_mask(_mm512_loadu_si512((const void *)(v + 32)), z);
    return lo | hi << 32;
}

/* 3-column sextets of channels a and b (rows of w values) into e[0, w), 64 pixels a step: the
 * channels' sign bits as 64-bit masks, shifted for the left and right neighbours (replicated
 * at the row's ends), each set as one bit of the bytes. e is written up to a multiple of 64. */
static void emit_sextets(const int16_t *va, const int16_t *vb, uint8_t *e, int w) {
    int nblk = (w + 63) / 64;
    uint64_t ma[nblk + 1], mb[nblk + 1];
    for (int i = 0; i < nblk; i++) ma[i] = ge0_bits(va + 64 * i), mb[i] = ge0_bits(vb + 64 * i);
    ma[nblk] = mb[nblk] = 0;
    uint64_t last = (uint64_t)1 << (w % 64), keep = last - 1;  /* pixel w := pixel w - 1 */
    ma[w / 64] = (ma[w / 64] & keep) | ((ma[(w - 1) / 64] >> ((w - 1) % 64) & 1) ? last : 0);
    mb[w / 64] = (mb[w / 64] & keep) | ((mb[(w - 1) / 64] >> ((w - 1) % 64) & 1) ? last : 0);
    for (int i = 0; i < nblk; i++) {
        uint64_t la = ma[i] << 1 | (i ? ma[i - 1] >> 63 : ma[i] & 1);  /* pixel -1 := pixel 0 */
        uint64_t lb = mb[i] << 1 | (i ? mb[i - 1] >> 63 : mb[i] & 1);
        uint64_t ra = ma[i] >> 1 | ma[i + 1] << 63, rb = mb[i] >> 1 | mb[i + 1] << 63;
        __m512i v = _mm512_maskz_mov_epi8(la, _mm512_set1_epi8(1));
        v = _mm512_mask_add_epi8(v, ma[i], v, _mm512_set1_epi8(2));
        v = _mm512_mask_add_epi8(v, ra, v, _mm512_set1_epi8(4));
        v = _mm512_mask_add_epi8(v, lb, v, _mm512_set1_epi8(8));
        v = _mm512_mask_add_epi8(v, mb[i], v, _mm512_set1_epi8(16));
        v = _mm512_mask_add_epi8(v, rb, v, _mm512_set1_epi8(32));
        _mm512_storeu_si512((void *)(e + 64 * i), v);
    }
}
#endif

/* d[x] = bit j set where v[j][x] >= 0, for the gc (2, 4 or 6: a constant when inlined, so
 * the loop over x vectorizes) rows v. */
static inline __attribute__((always_inline)) void pack_bits(uint8_t *d, const int16_t *const *v,
                                                            int w, const int gc) {
    for (int x = 0; x < w; x++) {
        int b = 0;
        for (int j = 0; j < gc; j++) b |= (v[j][x] >= 0) << j;
        d[x] = (uint8_t)b;
    }
}

/* Store row y of tensor t in every format its consumers read. val[c][x] holds the values a
 * conv reads: fixed values as they are, bits as -1/+1 (so bit = val >= 0 for both). */
static void emit(gk_ctx *c, int t, int y, const int16_t *val) {
    const gk_tensor *tt = &c->t[t];
    tstate *s = &c->st[t];
    int w = c->w, sb = c->sb, ch = tt->channels;
    if (tt->cap_plain) {  /* produce() computes such rows in their ring slot (plain_slot) */
        int slot = y % tt->cap_plain;
        int16_t *dst = s->plain + (size_t)slot * ch * sb;
        if (dst != val) memcpy(dst, val, (size_t)ch * sb * sizeof(int16_t));
        s->tag_plain[slot] = y;
    }
    if (tt->cap_bits) {
        int slot = y % tt->cap_bits, gc = tt->grp_ch, groups = bit_groups(tt);
        uint8_t *dst = s->bits + (size_t)slot * groups * sb;
        for (int g = 0; g < groups; g++) {
#if GK_AVX512
            if (tt->grp_cols == 3) {
                const int16_t *va = val + (size_t)(2 * g) * sb;
                emit_sextets(va, 2 * g + 1 < ch ? va + sb : c->zeros, dst + (size_t)g * sb, w);
                continue;
            }
#endif
            /* the group's channels at each pixel (channels past ch: any row, their table bits
             * are masked), padded; sextets spread them over 3 columns */
            uint8_t *d = tt->grp_cols == 3 ? c->centre : dst + (size_t)g * sb;
            const int16_t *v[6];
            for (int j = 0; j < gc; j++)
                v[j] = gc * g + j < ch ? val + (size_t)(gc * g + j) * sb : c->zeros;
            if (gc == 4) pack_bits(d + 1, v, w, 4);
            else if (gc == 6) pack_bits(d + 1, v, w, 6);
            else pack_bits(d + 1, v, w, 2);
            d[0] = d[1];
            d[w + 1] = d[w];
            if (tt->grp_cols == 3) {  /* 2 channels: bit j of column x-1+k to bit 3j+k */
                uint8_t *e = dst + (size_t)g * sb;
                for (int x = 0; x < w; x++) {
                    uint8_t l = d[x], m = d[x + 1], r = d[x + 2];
                    e[x] = (uint8_t)((l & 1) | (m & 1) << 1 | (r & 1) << 2 |
                                         (l & 2) << 2 | (m & 2) << 3 | (r & 2) << 4);
                }
            }
        }
        s->tag_bits[slot] = y;
    }
    if (tt->cap_pairs) {
        int slot = y % tt->cap_pairs, pairs = (ch + 1) / 2;
        int32_t *dst = s->pairs + (size_t)slot * pairs * sb;
        for (int p = 0; p < pairs; p++) {
            int32_t *d = dst + (size_t)p * sb;
            const int16_t *lo = val + (size_t)(2 * p) * sb;
            const int16_t *hi = 2 * p + 1 < ch ? lo + sb : c->zeros;
            for (int x = 0; x < w; x++)
                d[x + 1] = (int32_t)((uint32_t)(uint16_t)lo[x] | (uint32_t)(uint16_t)hi[x] << 16);
            d[0] = d[1];
            d[w + 1] = d[w];
        }
        s->tag_pairs[slot] = y;
    }
}

/* Row y of tensor 0 (pixels) into its formats. */
static void emit_input(gk_ctx *c, int y) {
    int w = c->w, sb = c->sb, ch = c->t[0].channels;
    const uint8_t *src = c->x0 + (size_t)y * w * ch;
    for (int k = 0; k < ch; k++)
        for (int x = 0; x < w; x++) c->val[(size_t)k * sb + x] = src[(size_t)x * ch + k];
    emit(c, 0, y, c->val);
}

/* ------------------------------------------------------------------------- binary conv */
/* Table lookups per u8 accumulation segment: a nibble adds at most 4 (63 * 4 < 256), a
 * sextet 6 (42 * 6 < 256). */
#define SEG4 63
#define SEG6 42

#if GK_AVX2
/* out[b] = u8 sums over window nibbles [s0, s1) for NB blocks of 32 pixels from pixel x, each
 * table loaded once for the NB blocks. Named sums in a function of their own: GCC 12 adds a
 * register move per block and nibble for an array of sums inlined into bconv_tile. */
#define GK_SUM(b) if (NB > b) a##b = _mm256_add_epi8(a##b, _mm256_shuffle_epi8( \
    t, _mm256_loadu_si256((const __m256i *)(src + 32 * b))))
static inline __attribute__((always_inline)) void bconv_sums(
    const uint8_t *const *srcs, int s0, int s1, const uint8_t *tab, int x, __m256i *out,
    const int NB) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0;
    __m256i a7 = a0;
    const uint8_t *tp = tab + (size_t)s0 * 32;
    for (int i = s0; i < s1; i++, tp += 32) {
        const uint8_t *src = srcs[i] + x;
        __m256i t = _mm256_loadu_si256((const __m256i *)tp);
        GK_SUM(0); GK_SUM(1); GK_SUM(2); GK_SUM(3); GK_SUM(4); GK_SUM(5); GK_SUM(6); GK_SUM(7);
    }
#define GK_OUT(b) if (NB > b) _mm256_storeu_si256(out + b, a##b)
    GK_OUT(0); GK_OUT(1); GK_OUT(2); GK_OUT(3); GK_OUT(4); GK_OUT(5); GK_OUT(6); GK_OUT(7);
}
#undef GK_OUT
#undef GK_SUM

#define GK_SUMS(NB) static __attribute__((noinline)) void bconv_sums##NB( \
    const uint8_t *const *srcs, int s0, int s1, const uint8_t *tab, int x, __m256i *out) { \
    bconv_sums(srcs, s0, s1, tab, x, out, NB); }
GK_SUMS(8) GK_SUMS(4) GK_SUMS(2) GK_SUMS(1)
#undef GK_SUMS

/* One output channel x NB blocks of 32 pixels from pixel x: u8 sums flushed to the u16
 * counts every SEG4 nibbles. */
static inline __attribute__((always_inline)) void bconv_tile(
    const uint8_t *const *srcs, int nk, const uint8_t *tab, uint16_t *m, int x, const int NB) {
    for (int s0 = 0; s0 < nk; s0 += SEG4) {
        int s1 = s0 + SEG4 < nk ? s0 + SEG4 : nk;
        __m256i a[8];
        if (NB == 8) bconv_sums8(srcs, s0, s1, tab, x, a);
        if (NB == 4) bconv_sums4(srcs, s0, s1, tab, x, a);
        if (NB == 2) bconv_sums2(srcs, s0, s1, tab, x, a);
        if (NB == 1) bconv_sums1(srcs, s0, s1, tab, x, a);
        for (int b = 0; b < NB; b++) {
            __m256i lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(a[b]));
            __m256i hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(a[b], 1));
            __m256i *p = (__m256i *)(m + x + 32 * b);
            if (s0) {
                lo = _mm256_add_epi16(lo, _mm256_loadu_si256(p));
                hi = _mm256_add_epi16(hi, _mm256_loadu_si256(p + 1));
            }
            _mm256_storeu_si256(p, lo);
            _mm256_storeu_si256(p + 1, hi);
        }
    }
}
#endif

#if GK_AVX512
/* Sextets with AVX-512 VBMI: vpermb looks up 64 pixels in a 64-entry table. A table holds
 * two output channels' counts (o in the low nibble, o + 1 in the high one), so a tile is those
 * two channels x NB blocks of 64 pixels: two window sextets' lookups are added (at most 12 per
 * nibble), then the nibbles split (vpand; GFNI's affine moves the high one down) into one u8
 * sum per channel. Half the table bytes of one table per channel: the tables of a layer
 * (40 channels: 77 KB) stream from L2 once per row. 3x3 sextet rows start 64-byte aligned. */
#define GK_HI_NIBBLE 0x1020408000000000LL  /* GF(2) 8x8 matrix: byte >> 4 */
#define GK_SUM(b) if (NB > b) { \
    __m512i v = _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)(src0 + 64 * b)), t0); \
    if (two) v = _mm512_add_epi8(v, _mm512_permutexvar_epi8( \
        _mm512_loadu_si512((const void *)(src1 + 64 * b)), t1)); \
    a##b = _mm512_add_epi8(a##b, _mm512_and_si512(v, lo4)); \
    c##b = _mm512_add_epi8(c##b, _mm512_gf2p8affine_epi64_epi8(v, hi4, 0)); }
static inline __attribute__((always_inline)) void bconv6_sums(
    const uint8_t *const *srcs, int s0, int s1, const uint8_t *tab, int x, __m512i *out,
    const int NB) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512i c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0, c5 = a0;
    const __m512i lo4 = _mm512_set1_epi8(15), hi4 = _mm512_set1_epi64(GK_HI_NIBBLE);
    for (int i = s0; i < s1; i += 2) {
        int two = i + 1 < s1;
        const uint8_t *src0 = srcs[i] + x, *src1 = srcs[i + two] + x;
        __m512i t0 = _mm512_loadu_si512((const void *)(tab + (size_t)i * 64));
        __m512i t1 = _mm512_loadu_si512((const void *)(tab + (size_t)(i + two) * 64));
        GK_SUM(0); GK_SUM(1); GK_SUM(2); GK_SUM(3); GK_SUM(4); GK_SUM(5);
    }
#define GK_OUT(b) if (NB > b) { _mm512_store_si512((void *)(out + b), a##b); \
    _mm512_store_si512((void *)(out + 6 + b), c##b); }
    GK_OUT(0); GK_OUT(1); GK_OUT(2); GK_OUT(3); GK_OUT(4); GK_OUT(5);
}
#undef GK_OUT
#undef GK_SUM

#define GK_SUMS(NB) static __attribute__((noinline)) void bconv6_sums##NB( \
    const uint8_t *const *srcs, int s0, int s1, const uint8_t *tab, int x, __m512i *out) { \
    bconv6_sums(srcs, s0, s1, tab, x, out, NB); }
GK_SUMS(6) GK_SUMS(5) GK_SUMS(4) GK_SUMS(3) GK_SUMS(2) GK_SUMS(1)
#undef GK_SUMS

/* Output channels o (m0) and o + 1 (m1), their tables tab, x nb <= 6 blocks of 64 pixels from
 * pixel x: u8 sums flushed to the u16 counts every SEG6 sextets (an even number). */
static void bconv6_tile(const uint8_t *const *srcs, int nk, const uint8_t *tab, uint16_t *m0,
                        uint16_t *m1, int x, int nb) {
    for (int s0 = 0; s0 < nk; s0 += SEG6) {
        int s1 = s0 + SEG6 < nk ? s0 + SEG6 : nk;
        __m512i a[12] __attribute__((aligned(64)));
        switch (nb) {
            case 6: bconv6_sums6(srcs, s0, s1, tab, x, a); break;
            case 5: bconv6_sums5(srcs, s0, s1, tab, x, a); break;
            case 4: bconv6_sums4(srcs, s0, s1, tab, x, a); break;
            case 3: bconv6_sums3(srcs, s0, s1, tab, x, a); break;
            case 2: bconv6_sums2(srcs, s0, s1, tab, x, a); break;
            default: bconv6_sums1(srcs, s0, s1, tab, x, a); break;
        }
        for (int j = 0; j < 2 * nb; j++) {
            __m512i sums = a[j < nb ? j : 6 + j - nb];
            __m512i lo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(sums));
            __m512i hi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(sums, 1));
            __m512i *p = (__m512i *)((j < nb ? m0 : m1) + x + 64 * (j < nb ? j : j - nb));
            if (s0) {
                lo = _mm512_add_epi16(lo, _mm512_loadu_si512((const void *)p));
                hi = _mm512_add_epi16(hi, _mm512_loadu_si512((const void *)(p + 1)));
            }
            _mm512_storeu_si512((void *)p, lo);
            _mm512_storeu_si512((void *)(p + 1), hi);
        }
    }
}
#endif

#if GK_NEON
/* The same with NEON: tbl looks up 16 pixels' nibbles in the first 16 bytes of a table. */
static inline __attribute__((always_inline)) void bconv_tile(
    const uint8_t *const *srcs, int nk, const uint8_t *tab, uint16_t *m, int x, const int NB) {
    for (int s0 = 0; s0 < nk; s0 += SEG4) {
        int s1 = s0 + SEG4 < nk ? s0 + SEG4 : nk;
        uint8x16_t a[8];
        for (int b = 0; b < NB; b++) a[b] = vdupq_n_u8(0);
        for (int i = s0; i < s1; i++) {
            const uint8_t *src = srcs[i] + x;
            uint8x16_t t = vld1q_u8(tab + (size_t)i * 32);
            for (int b = 0; b < NB; b++) a[b] = vaddq_u8(a[b], vqtbl1q_u8(t, vld1q_u8(src + 16 * b)));
        }
        for (int b = 0; b < NB; b++) {
            uint16x8_t lo = vmovl_u8(vget_low_u8(a[b])), hi = vmovl_high_u8(a[b]);
            uint16_t *p = m + x + 16 * b;
            if (s0) {
                lo = vaddq_u16(lo, vld1q_u16(p));
                hi = vaddq_u16(hi, vld1q_u16(p + 8));
            }
            vst1q_u16(p, lo);
            vst1q_u16(p + 8, hi);
        }
    }
}
#endif

/* m[o][x] = differing bits between the window at x and output o's weights, for x < w
 * (lanes up to the next multiple of 64 hold garbage). rows: the kernel's input bits rows. */
static void binary_conv(gk_ctx *c, const gk_layer *L, const gk_tensor *in, uint8_t *const *rows) {
    int sb = c->sb, k = L->kernel, ng = L->n_in, tb = L->tab_bytes;
    int nkx = in->grp_cols == 3 ? 1 : k;  /* window columns looked up separately */
    int nk = k * nkx * ng;
    /* first column read: the padded row's 0 for a 3x3 window of 1-column groups, 1 (the
     * first pixel) for a 1x1 one; 3-column groups are stored without padding, from 0 */
    int off = in->grp_cols == 3 ? 0 : nkx == 3 ? 0 : 1;
    const uint8_t *srcs[nk];  /* window group i = (ky, kx, g) starts here */
    for (int i = 0; i < nk; i++) {
        int ky = i / (nkx * ng), rem = i % (nkx * ng);
        srcs[i] = rows[ky] + (size_t)(rem % ng) * sb + off + rem / ng;
    }
#if GK_AVX512
    if (tb == 64) {
        int nblk = (c->w + 63) / 64;
        for (int o = 0; o < L->c_out; o += 2) {  /* an odd last channel: o + 1 to a spare row */
            const uint8_t *tab = L->tables + (size_t)(o / 2) * nk * 64;
            uint16_t *m0 = c->m + (size_t)o * sb, *m1 = m0 + sb;
            for (int b = 0; b < nblk; b += 6)
                bconv6_tile(srcs, nk, tab, m0, m1, 64 * b, nblk - b < 6 ? nblk - b : 6);
        }
        return;
    }
#endif
#if GK_AVX2 || GK_NEON
    if (tb == 32) {
        int bw = GK_NEON ? 16 : 32, nblk = (c->w + bw - 1) / bw;
        for (int o = 0; o < L->c_out; o++) {
            const uint8_t *tab = L->tables + (size_t)o * nk * 32;
            uint16_t *m = c->m + (size_t)o * sb;
            int b = 0;
            for (; b + 8 <= nblk; b += 8) bconv_tile(srcs, nk, tab, m, bw * b, 8);
            if (nblk - b >= 4) bconv_tile(srcs, nk, tab, m, bw * b, 4), b += 4;
            if (nblk - b >= 2) bconv_tile(srcs, nk, tab, m, bw * b, 2), b += 2;
            if (nblk - b >= 1) bconv_tile(srcs, nk, tab, m, bw * b, 1);
        }
        return;
    }
#endif
    int n = (c->w + 31) / 32 * 32;
    for (int o = 0; o < L->c_out; o++) {
        uint16_t *mo = c->m + (size_t)o * sb;
        /* sextet tables hold channels o (low nibble) and o + 1 (high) of an even o */
        int pair = tb == 64, sh = pair ? 4 * (o & 1) : 0;
        const uint8_t *tab = L->tables + (size_t)(pair ? o / 2 : o) * nk * tb;
        for (int x = 0; x < n; x++) mo[x] = 0;
        for (int i = 0; i < nk; i++) {  /* one loop per format: constant masks vectorize */
            const uint8_t *src = srcs[i];
            const uint8_t *t = tab + (size_t)i * tb;
            if (pair)
                for (int x = 0; x < n; x++) mo[x] += (t[src[x] & 63] >> sh) & 15;
            else
                for (int x = 0; x < n; x++) mo[x] += t[src[x] & 15];
        }
    }
}

/* ------------------------------------------------------------------------- fixed conv */
#if GK_AVX2
/* The fixed convs' vectors: 16 int32 lanes with AVX-512, 8 with AVX2 (the same loops). */
#if GK_AVX512
typedef __m512i vint;
#define VL 16
#define V_ZERO() _mm512_setzero_si512()
#define V_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define V_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define V_SET1(x) _mm512_set1_epi32(x)
#define V_ADD(a, b) _mm512_add_epi32(a, b)
#define V_MADD(a, b) _mm512_madd_epi16(a, b)
#else
typedef __m256i vint;
#define VL 8
#define V_ZERO() _mm256_setzero_si256()
#define V_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), v)
#define V_SET1(x) _mm256_set1_epi32(x)
#define V_ADD(a, b) _mm256_add_epi32(a, b)
#define V_MADD(a, b) _mm256_madd_epi16(a, b)
#endif
#endif

/* acc[o][x] = sum over the window of weight * value, int32, for x < w (garbage beyond). */
static void fixed_conv(gk_ctx *c, const gk_layer *L, int32_t *const *rows) {
    int sb = c->sb, k = L->kernel, np = L->n_in, nk = k * k * np;
    int off = k == 3 ? 0 : 1;
    int nvec = (c->w + 7) / 8;
    const int32_t *srcs[nk];  /* window pair i = (ky, kx, p) starts here */
    for (int i = 0; i < nk; i++) {
        int ky = i / (k * np), rem = i % (k * np);
        srcs[i] = rows[ky] + (size_t)(rem % np) * sb + off + rem / np;
    }
#if GK_AVX2
    nvec = (c->w + VL - 1) / VL;
    for (int o = 0; o < L->c_out; o += 4) {
        const int32_t *w0 = L->wpairs + (size_t)o * nk;
        for (int v = 0; v < nvec; v += 2) {
            int two = nvec - v > 1;
            vint s00 = V_ZERO(), s01 = s00, s10 = s00, s11 = s00;
            vint s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int i = 0; i < nk; i++) {
                const int32_t *src = srcs[i] + v * VL;
                vint x0 = V_LOAD(src);
                vint x1 = two ? V_LOAD(src + VL) : x0;
                vint q0 = V_SET1(w0[i]), q1 = V_SET1(w0[nk + i]);
                vint q2 = V_SET1(w0[2 * nk + i]), q3 = V_SET1(w0[3 * nk + i]);
                s00 = V_ADD(s00, V_MADD(x0, q0));
                s01 = V_ADD(s01, V_MADD(x1, q0));
                s10 = V_ADD(s10, V_MADD(x0, q1));
                s11 = V_ADD(s11, V_MADD(x1, q1));
                s20 = V_ADD(s20, V_MADD(x0, q2));
                s21 = V_ADD(s21, V_MADD(x1, q2));
                s30 = V_ADD(s30, V_MADD(x0, q3));
                s31 = V_ADD(s31, V_MADD(x1, q3));
            }
            int32_t *a = c->acc + (size_t)o * sb + v * VL;
            V_STORE(a, s00);
            V_STORE(a + VL, s01);
            V_STORE(a + sb, s10);
            V_STORE(a + sb + VL, s11);
            V_STORE(a + 2 * sb, s20);
            V_STORE(a + 2 * sb + VL, s21);
            V_STORE(a + 3 * sb, s30);
            V_STORE(a + 3 * sb + VL, s31);
        }
    }
#else
    int n = nvec * 8;
    for (int o = 0; o < L->c_out; o++) {
        int32_t *a = c->acc + (size_t)o * sb;
        const int32_t *wo = L->wpairs + (size_t)o * nk;
        for (int x = 0; x < n; x++) a[x] = 0;
        for (int i = 0; i < nk; i++) {
            const int32_t *src = srcs[i];
            int32_t wl = (int16_t)(wo[i] & 0xffff), wh = wo[i] >> 16;
            for (int x = 0; x < n; x++) a[x] += (int16_t)(src[x] & 0xffff) * wl + (src[x] >> 16) * wh;
        }
    }
#endif
}

/* acc[o][x] = sum over the window of channel o's weight * channel o's value (depthwise).
 * AVX2 and AVX-512: both channels of a pair from one load, vpmaddwd with weight pairs (w, 0)
 * and (0, w). */
static void depthwise_conv(gk_ctx *c, const gk_layer *L, int32_t *const *rows) {
    int sb = c->sb, k = L->kernel, kk = k * k, n = (c->w + 7) / 8 * 8;
    int off = k == 3 ? 0 : 1;
#if GK_AVX2
    n = (c->w + VL - 1) / VL * VL;
    for (int o = 0; o < L->c_out; o += 2) {
        int odd = o + 1 < L->c_out;  /* a last pair with one channel: its high half unused */
        const int32_t *w0 = L->wpairs + (size_t)o * kk, *w1 = w0 + kk;
        vint q0[9], q1[9];
        const int32_t *srcs[9];
        for (int i = 0; i < kk; i++) {
            q0[i] = V_SET1((int32_t)((uint32_t)w0[i] & 0xffff));
            q1[i] = V_SET1(odd ? (int32_t)((uint32_t)w1[i] << 16) : 0);
            srcs[i] = rows[i / k] + (size_t)(o / 2) * sb + off + i % k;
        }
        int32_t *a0 = c->acc + (size_t)o * sb, *a1 = a0 + sb;
        for (int x = 0; x < n; x += VL) {
            vint s0 = V_ZERO(), s1 = s0;
            for (int i = 0; i < kk; i++) {
                vint v = V_LOAD(srcs[i] + x);
                s0 = V_ADD(s0, V_MADD(v, q0[i]));
                s1 = V_ADD(s1, V_MADD(v, q1[i]));
            }
            V_STORE(a0 + x, s0);
            V_STORE(a1 + x, s1);
        }
    }
#else
    for (int o = 0; o < L->c_out; o++) {
        int32_t *a = c->acc + (size_t)o * sb;
        const int32_t *wo = L->wpairs + (size_t)o * kk;
        int half = (o & 1) * 16;  /* channel o is the low (even) or high (odd) half of pair o/2 */
        for (int x = 0; x < n; x++) a[x] = 0;
        for (int i = 0; i < kk; i++) {
            const int32_t *src = rows[i / k] + (size_t)(o / 2) * sb + off + i % k;
            int32_t wt = wo[i];
            for (int x = 0; x < n; x++) a[x] += (int32_t)(int16_t)(src[x] >> half) * wt;
        }
    }
#endif
}

/* ------------------------------------------------------------------------- outputs */
/* Output channel o's affine stage on a binary conv's counts m, plus the residual ro, into v.
 * Called with has_act constant: without an activation (k = rnd = off = 0, the identity) the
 * compiler drops its steps. */
static inline __attribute__((always_inline)) void binary_affine(
    const gk_layer *L, int o, const uint16_t *m, const int16_t *ro, int16_t *v, int w,
    const int has_act) {
    int32_t a = L->a32[o], q = L->q32[o], b = L->b32[o], s = L->shift;
    int32_t lo = L->out_lo, hi = L->out_hi;
    gk_act f = act(L, o);
    for (int x = 0; x < w; x++) {
        int32_t u = q + (((int32_t)m[x] * a + b) >> s);
        if (has_act) u = (u < 0 ? (u + f.rnd) >> f.k : u) + f.off;
        u += ro[x];
        u = u > lo ? u : lo;  /* written as max then min: vpmaxsd, vpminsd */
        v[x] = (int16_t)(u < hi ? u : hi);
    }
}

/* The same on a fixed conv's sums acc, in float64 (exact: spec/native.py). */
static inline __attribute__((always_inline)) void fixed_affine(
    const gk_layer *L, int o, const int32_t *acc, const int16_t *ro, int16_t *v, int w,
    const int has_act) {
    double fa = L->fa[o], fb = L->fb[o], sc = ldexp(1.0, -L->shift);
    double lo = L->out_lo, hi = L->out_hi;
    gk_act f = act(L, o);
    double rnd = f.rnd, sk = ldexp(1.0, -f.k), off = f.off;
    for (int x = 0; x < w; x++) {
        double u = floor(((double)acc[x] * fa + fb) * sc);
        if (has_act) u = (u < 0 ? floor((u + rnd) * sk) : u) + off;
        u += ro[x];
        u = u < lo ? lo : u;
        u = u > hi ? hi : u;
        v[x] = (int16_t)u;
    }
}

/* ------------------------------------------------------------------------- one row */
static void produce(gk_ctx *c, int t, int y);

static void ensure(gk_ctx *c, int t, int y) {
    tstate *s = &c->st[t];
    if (y >= s->hi) y = s->hi - 1;
    while (s->next <= y && !c->err) {
        produce(c, t, s->next);
        s->next++;
    }
}

static void produce(gk_ctx *c, int t, int y) {
    if (t == 0) {
        emit_input(c, y);
        return;
    }
    const gk_layer *L = &c->l[t - 1];
    int r = L->kernel / 2, h = c->h, w = c->w, sb = c->sb;
    ensure(c, t - 1, y + r < h ? y + r : h - 1);
    if (L->residual >= 0) ensure(c, L->residual, y);
    if (c->err) return;
    int ys[3] = {clampi(y - 1, 0, h - 1), y, clampi(y + 1, 0, h - 1)};
    int nr = L->kernel == 3 ? 3 : 1;
    const int *yy = L->kernel == 3 ? ys : ys + 1;
    /* a residual source is computed in its ring slot: no copy there */
    int16_t *val = c->t[t].cap_plain ? plain_slot(c, t, y) : c->val;
    if (L->kind == KIND_BINARY) {
        uint8_t *rows[3];
        for (int i = 0; i < nr; i++) rows[i] = bits_row(c, t - 1, yy[i]);
        if (c->err) return;
        binary_conv(c, L, &c->t[t - 1], rows);
    } else {
        int32_t *rows[3];
        for (int i = 0; i < nr; i++) rows[i] = pairs_row(c, t - 1, yy[i]);
        if (c->err) return;
        if (L->kind == KIND_DEPTHWISE)
            depthwise_conv(c, L, rows);
        else
            fixed_conv(c, L, rows);
    }
    const int16_t *res = L->residual >= 0 ? plain_row(c, L->residual, y) : c->zeros;
    if (c->err) return;
    for (int o = 0; o < L->c_out; o++) {
        int16_t *v = val + (size_t)o * sb;
        const int16_t *ro = L->residual >= 0 ? res + (size_t)o * sb : res;
        if (L->kind == KIND_BINARY) {
            const uint16_t *m = c->m + (size_t)o * sb;
            if (L->output == OUT_THRESHOLD) {
                int32_t lim = L->thr_m[o], f = L->flip[o];
                for (int x = 0; x < w; x++) v[x] = (int16_t)((((m[x] <= lim) ^ f) << 1) - 1);
            } else if (L->act_shift) {
                binary_affine(L, o, m, ro, v, w, 1);
            } else {
                binary_affine(L, o, m, ro, v, w, 0);
            }
        } else {
            const int32_t *acc = c->acc + (size_t)o * sb;
            if (L->output == OUT_THRESHOLD) {
                int64_t lim = L->thr_acc[o];
                int32_t f = L->flip[o];
                for (int x = 0; x < w; x++) v[x] = (int16_t)((((acc[x] >= lim) ^ f) << 1) - 1);
            } else if (L->act_shift) {
                fixed_affine(L, o, acc, ro, v, w, 1);
            } else {
                fixed_affine(L, o, acc, ro, v, w, 0);
            }
        }
    }
    if (L->output == OUT_PIXEL) {
        int c0 = c->t[0].channels, co = L->c_out;
        const uint8_t *in = c->x0 + (size_t)y * w * c0;
        uint8_t *dst = c->out + (size_t)y * w * co;
        for (int o = 0; o < co; o++) {
            const int16_t *v = val + (size_t)o * sb;
            int src = L->rmap[o];
            for (int x = 0; x < w; x++) {
                int u = v[x] + (src >= 0 ? in[(size_t)x * c0 + src] : 0);
                dst[(size_t)x * co + o] = (uint8_t)clampi(u, 0, 255);
            }
        }
        return;
    }
    emit(c, t, y, val);
}

/* ------------------------------------------------------------------------- entry point */
static void *alloc(gk_ctx *c, size_t n) {
    void *p = NULL;
    if (n == 0) return NULL;
    n = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, n)) {
        c->err = GK_ENOMEM;
        return NULL;
    }
    memset(p, 0, n);
    return p;
}

static int32_t *alloc_tags(gk_ctx *c, int n) {
    int32_t *p = alloc(c, (size_t)n * sizeof(int32_t));
    for (int i = 0; p && i < n; i++) p[i] = -1;
    return p;
}

/* Output rows [r0, r1) of a frame: x0 (h, w, c0) uint8, out (h, w, c_out) uint8. */
int gk_run_strip(const gk_tensor *tensors, const gk_layer *layers, int n_layers,
                 const uint8_t *x0, uint8_t *out, int h, int w, int r0, int r1) {
    if (n_layers < 1 || h < 1 || w < 1 || r0 < 0 || r1 > h || r0 >= r1) return GK_EARG;
    gk_ctx c = {tensors, layers, n_layers, h, w, 0, x0, out, NULL, NULL, NULL, NULL, NULL, NULL,
                GK_OK};
    c.sb = (w + 127) / 128 * 128 + 64;  /* a 64-pixel block past the last pixel, plus pads */
    int max_c = 4;
    for (int i = 0; i < n_layers; i++) {
        if (layers[i].c_out_pad > max_c) max_c = layers[i].c_out_pad;
        if (tensors[i].channels > max_c) max_c = tensors[i].channels;
    }
    tstate st[n_layers + 1];
    memset(st, 0, sizeof st);
    c.st = st;
    c.m = alloc(&c, (size_t)max_c * c.sb * sizeof(uint16_t));
    c.acc = alloc(&c, (size_t)max_c * c.sb * sizeof(int32_t));
    c.val = alloc(&c, (size_t)max_c * c.sb * sizeof(int16_t));
    c.zeros = alloc(&c, (size_t)c.sb * sizeof(int16_t));
    c.centre = alloc(&c, (size_t)c.sb);
    for (int t = 0; t <= n_layers && !c.err; t++) {
        const gk_tensor *tt = &tensors[t];
        int rad = tt->radius_after;
        st[t].lo = r0 - rad < 0 ? 0 : r0 - rad;
        st[t].hi = r1 + rad > h ? h : r1 + rad;
        st[t].next = st[t].lo;
        size_t ch = (size_t)tt->channels;
        st[t].bits = alloc(&c, (size_t)tt->cap_bits * bit_groups(tt) * c.sb);
        st[t].pairs = alloc(&c, (size_t)tt->cap_pairs * ((ch + 1) / 2) * c.sb * sizeof(int32_t));
        st[t].plain = alloc(&c, (size_t)tt->cap_plain * ch * c.sb * sizeof(int16_t));
        st[t].tag_bits = alloc_tags(&c, tt->cap_bits);
        st[t].tag_pairs = alloc_tags(&c, tt->cap_pairs);
        st[t].tag_plain = alloc_tags(&c, tt->cap_plain);
    }
    for (int y = r0; y < r1 && !c.err; y++) ensure(&c, n_layers, y);
    for (int t = 0; t <= n_layers; t++) {
        free(st[t].bits);
        free(st[t].pairs);
        free(st[t].plain);
        free(st[t].tag_bits);
        free(st[t].tag_pairs);
        free(st[t].tag_plain);
    }
    free(c.m);
    free(c.acc);
    free(c.val);
    free(c.zeros);
    free(c.centre);
    return c.err;
}

/* ------------------------------------------------------------------------- pixel steps */
/* Pixel unshuffle by r (torch's channel order c*r*r + i*r + j) of an (h*r, w*r, c) image
 * into (h, w, c*r*r [+ 1]) tensor 0; level >= 0 appends the constant noise-level channel.
 * Inlined with constant c and r for the usual steps (the byte copies unrolled). */
static inline __attribute__((always_inline)) void unshuffle(
    const uint8_t *img, int h, int w, int c, int r, int level, uint8_t *out) {
    int co = c * r * r + (level >= 0), iw = w * r;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < r; i++) {
            const uint8_t *row = img + (size_t)(y * r + i) * iw * c;
            uint8_t *o = out + (size_t)y * w * co + i * r;
            for (int x = 0; x < w; x++, o += co, row += r * c)
                for (int j = 0; j < r; j++)
                    for (int k = 0; k < c; k++) o[k * r * r + j] = row[j * c + k];
        }
    if (level >= 0)
        for (size_t p = 0; p < (size_t)h * w; p++) out[p * co + co - 1] = (uint8_t)level;
}

void gk_unshuffle(const uint8_t *img, int h, int w, int c, int r, int level, uint8_t *out) {
    if (r == 2 && c == 3) unshuffle(img, h, w, 3, 2, level, out);
    else if (r == 2 && c == 1) unshuffle(img, h, w, 1, 2, level, out);
    else unshuffle(img, h, w, c, r, level, out);
}

/* Pixel shuffle by r: (h, w, c*r*r) output tensor -> (h*r, w*r, c) image. */
static inline __attribute__((always_inline)) void shuffle(
    const uint8_t *t, int h, int w, int c, int r, uint8_t *out) {
    int ow = w * r, ct = c * r * r;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < r; i++) {
            const uint8_t *p = t + (size_t)y * w * ct + i * r;
            uint8_t *o = out + (size_t)(y * r + i) * ow * c;
            for (int x = 0; x < w; x++, p += ct, o += r * c)
                for (int j = 0; j < r; j++)
                    for (int k = 0; k < c; k++) o[j * c + k] = p[k * r * r + j];
        }
}

/* ------------------------------------------------------------------------ the grid filter */
/* spec.degrid on a (2 bh, 2 bw, c) image, a pair of image rows (one row of blocks) at a time
 * and in the image's own sample order, so every loop runs over a row with unit stride (the
 * compiler vectorizes them; the planar per-channel passes this replaces ran 10x slower). A
 * row pair has L = 2 bw c samples; sample p is channel p % c of column p / c, at offset
 * px = (p / c) & 1 in its block, whose other column is p + c (px = 0) or p - c (px = 1), and
 * whose neighbouring blocks are p -+ 2c. Every block quantity is computed at both columns of
 * its block (the same value twice): twice the arithmetic, none of it strided.
 *
 * Per row of blocks r, with column sums s = top + bottom and differences v = top - bottom:
 * m = s + s', e_x = 8 sg (s - s') + ramp_x(m), e_y = 8 (v + v') + ramp_y(m), e_xy =
 * 8 sg (v - v') where ' is the block's other column and sg = (-1)^px. e_y waits for the next
 * row's m; each component is windowed along the row ([1 4 6 4 1] over blocks, edges
 * replicated), then down five such rows (clamped), limited to +-top, and the pixel (py, px)
 * loses round(sg (S_x + S_xy) + S_y) (py = 0) or round(sg (S_x - S_xy) - S_y) (py = 1),
 * 13 bits, half away from zero. Rings: m 3 rows, e 2, windowed rows 5. */
static inline int32_t gk_round_shift13(int32_t v) {
    return (v + (v >> 31) + (1 << 12)) >> 13;
}

/* Block row from image rows t, b: m, e_x without its ramp, e_y without its ramp, e_xy. s and
 * v are scratch rows readable c before and after. Every block quantity fits int16 (|m| <=
 * 1020, |e| <= 8 * 510 + 2 * 1020 with the ramps): half the bytes of int32 per pass; the
 * windowed sums (up to 16x that) are int32. */
static void dg_row(const uint8_t *restrict t, const uint8_t *restrict b, const int16_t *restrict sg,
                   int16_t *restrict s, int16_t *restrict v, int L, int c, int16_t *restrict m,
                   int16_t *restrict x, int16_t *restrict y, int16_t *restrict z) {
    for (int p = 0; p < L; p++) s[p] = (int16_t)(t[p] + b[p]), v[p] = (int16_t)(t[p] - b[p]);
    for (int p = 0; p < L; p++) {
        int16_t s1 = s[p + c], s0 = s[p - c], v1 = v[p + c], v0 = v[p - c];
        int16_t so = sg[p] > 0 ? s1 : s0, vo = sg[p] > 0 ? v1 : v0;
        m[p] = (int16_t)(s[p] + so);
        x[p] = (int16_t)(8 * sg[p] * (s[p] - so));
        y[p] = (int16_t)(8 * (v[p] + vo));
        z[p] = (int16_t)(8 * sg[p] * (v[p] - vo));
    }
}

/* e += f * (hi - lo) over a row: the ramps. */
static void dg_ramp(int16_t *restrict e, const int16_t *restrict hi, const int16_t *restrict lo,
                    int n, int f) {
    for (int p = 0; p < n; p++) e[p] = (int16_t)(e[p] + f * (hi[p] - lo[p]));
}

/* o = [1 4 6 4 1] over blocks (step c2) of pad, a row with two blocks before and after. */
static void dg_window(int32_t *restrict o, const int16_t *restrict pad, int L, int c2) {
    for (int p = 0; p < L; p++)
        o[p] = pad[p] + 4 * pad[p + c2] + 6 * pad[p + 2 * c2] + 4 * pad[p + 3 * c2] + pad[p + 4 * c2];
}

/* Output rows ot, ob from image rows t, b and the windowed rows w[component][5 rows]. */
static void dg_out(const uint8_t *restrict t, const uint8_t *restrict b, const int16_t *restrict sg,
                   const int32_t *const w[3][5], int L, int32_t top, uint8_t *restrict ot,
                   uint8_t *restrict ob) {
    const int32_t *restrict x0 = w[0][0], *restrict x1 = w[0][1], *restrict x2 = w[0][2],
                  *restrict x3 = w[0][3], *restrict x4 = w[0][4];
    const int32_t *restrict y0 = w[1][0], *restrict y1 = w[1][1], *restrict y2 = w[1][2],
                  *restrict y3 = w[1][3], *restrict y4 = w[1][4];
    const int32_t *restrict z0 = w[2][0], *restrict z1 = w[2][1], *restrict z2 = w[2][2],
                  *restrict z3 = w[2][3], *restrict z4 = w[2][4];
    for (int p = 0; p < L; p++) {
        int32_t sx = x0[p] + 4 * x1[p] + 6 * x2[p] + 4 * x3[p] + x4[p];
        int32_t sy = y0[p] + 4 * y1[p] + 6 * y2[p] + 4 * y3[p] + y4[p];
        int32_t sz = z0[p] + 4 * z1[p] + 6 * z2[p] + 4 * z3[p] + z4[p];
        sx = sx < -top ? -top : sx > top ? top : sx;
        sy = sy < -top ? -top : sy > top ? top : sy;
        sz = sz < -top ? -top : sz > top ? top : sz;
        int32_t c0 = sg[p] * (sx + sz) + sy, c1 = sg[p] * (sx - sz) - sy;
        int32_t a = t[p] - gk_round_shift13(c0), d = b[p] - gk_round_shift13(c1);
        ot[p] = (uint8_t)(a < 0 ? 0 : a > 255 ? 255 : a);
        ob[p] = (uint8_t)(d < 0 ? 0 : d > 255 ? 255 : d);
    }
}

int gk_degrid(const uint8_t *img, int bh, int bw, int c, int32_t top, uint8_t *out) {
    const int L = 2 * bw * c, c2 = 2 * c;
    /* int16: sg; s and v, padded by c each side; m x3; e_x, e_y, e_xy x2; a padded row
     * (L + 8c). int32: windowed rows 5 x 3. */
    size_t n16 = (size_t)L * (1 + 2 + 3 + 6 + 1) + 12 * (size_t)c, n32 = (size_t)L * 15;
    int32_t *work = calloc(n32 + (n16 + 1) / 2, sizeof(int32_t));
    if (!work) return GK_ENOMEM;
    int32_t *hw[5][3], *q32 = work;
    for (int k = 0; k < 5; k++)
        for (int e = 0; e < 3; e++, q32 += L) hw[k][e] = q32;
    int16_t *sg = (int16_t *)q32, *s = sg + L + c, *v = s + L + 2 * c, *m[3], *ex[2], *eyb[2],
            *exy[2];
    int16_t *q = v + L + c;
    for (int k = 0; k < 3; k++, q += L) m[k] = q;
    for (int k = 0; k < 2; k++, q += 3 * L) ex[k] = q, eyb[k] = q + L, exy[k] = q + 2 * L;
    int16_t *pad = q;  /* L + 8c: a component row with two replicated blocks each side */
    for (int p = 0; p < L; p++) sg[p] = (p / c) & 1 ? -1 : 1;
    for (int r = 0; r < bh + 3; r++) {
        if (r < bh) {  /* block row r: m, e_x (with its ramp), e_y without its ramp, e_xy */
            const uint8_t *t = img + (size_t)2 * r * L;
            int16_t *mr = m[r % 3], *x = ex[r & 1];
            dg_row(t, t + L, sg, s, v, L, c, mr, x, eyb[r & 1], exy[r & 1]);
            if (bw > 1) {
                dg_ramp(x + c2, mr + 2 * c2, mr, L - 2 * c2, 1);
                dg_ramp(x, mr + c2, mr, c2, 2);
                dg_ramp(x + L - c2, mr + L - c2, mr + L - 2 * c2, c2, 2);
            }
        }
        int i = r - 1;  /* e_y of row i (row i + 1's m is here), then row i windowed */
        if (i >= 0 && i < bh) {
            int16_t *y = eyb[i & 1];
            if (bh > 1)
                dg_ramp(y, m[(i < bh - 1 ? i + 1 : i) % 3], m[(i > 0 ? i - 1 : 0) % 3], L,
                        i == 0 || i == bh - 1 ? 2 : 1);
            const int16_t *comp[3] = {ex[i & 1], y, exy[i & 1]};
            for (int e = 0; e < 3; e++) {
                const int16_t *src = comp[e];
                memcpy(pad, src, (size_t)c2 * sizeof(int16_t));
                memcpy(pad + c2, src, (size_t)c2 * sizeof(int16_t));
                memcpy(pad + 2 * c2, src, (size_t)L * sizeof(int16_t));
                memcpy(pad + 2 * c2 + L, src + L - c2, (size_t)c2 * sizeof(int16_t));
                memcpy(pad + 3 * c2 + L, src + L - c2, (size_t)c2 * sizeof(int16_t));
                dg_window(hw[i % 5][e], pad, L, c2);
            }
        }
        int o = r - 3;  /* output row o: its windowed rows o-2..o+2 are here */
        if (o >= 0 && o < bh) {
            const int32_t *w[3][5];
            for (int u = 0; u < 5; u++)
                for (int e = 0; e < 3; e++) w[e][u] = hw[clampi(o + u - 2, 0, bh - 1) % 5][e];
            const uint8_t *t = img + (size_t)2 * o * L;
            uint8_t *ot = out + (size_t)2 * o * L;
            dg_out(t, t + L, sg, w, L, top, ot, ot + L);
        }
    }
    free(work);
    return GK_OK;
}

/* -------------------------------------------------------------------- the temporal filter */
/* spec.temporal.blend of (h, w, c) frames: per row, a = sum over the channels of |frame -
 * prev| (a ring of 3 rows), summed down the 3 rows (clamped) and along 3 columns (edges
 * replicated) into the window sum, the new frame's weight from the spec's table, then the
 * rounded step prev + ((d w + 8 - (d < 0)) >> 4) (spec: sign(d) ((|d| w + 8) >> 4)).
 * Inlined with constant c for 1 and 3 channels. */
static inline __attribute__((always_inline)) int temporal(
    const uint8_t *prev, const uint8_t *frame, int h, int w, int c, const int32_t *table,
    uint8_t *out) {
    size_t rw = (size_t)w * c;
    int32_t *work = malloc(sizeof(int32_t) * ((size_t)w * 5 + 2 + rw));
    if (!work) return GK_ENOMEM;
    int32_t *a[3] = {work, work + w, work + 2 * w}, *vs = work + 3 * w, *wt = vs + w + 2;
    int32_t *ws = wt + w;  /* per sample */
    for (int r = 0; r <= h; r++) {
        if (r < h) {
            const uint8_t *f = frame + r * rw, *p = prev + r * rw;
            int32_t *ar = a[r % 3];
            for (int x = 0; x < w; x++) {
                int32_t sum = 0;
                for (int k = 0; k < c; k++) sum += abs((int)f[x * c + k] - (int)p[x * c + k]);
                ar[x] = sum;
            }
        }
        int y = r - 1;
        if (y < 0) continue;
        const int32_t *up = a[(y > 0 ? y - 1 : 0) % 3], *mid = a[y % 3],
                      *dn = a[(y < h - 1 ? y + 1 : y) % 3];
        for (int x = 0; x < w; x++) vs[x + 1] = up[x] + mid[x] + dn[x];
        vs[0] = vs[1], vs[w + 1] = vs[w];
        for (int x = 0; x < w; x++) wt[x] = table[vs[x] + vs[x + 1] + vs[x + 2]];
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) ws[x * c + k] = wt[x];
        const uint8_t *f = frame + y * rw, *p = prev + y * rw;
        uint8_t *o = out + y * rw;
        for (size_t i = 0; i < rw; i++) {
            int32_t d = (int32_t)f[i] - p[i];
            o[i] = (uint8_t)(p[i] + ((d * ws[i] + 8 - (d < 0)) >> 4));
        }
    }
    free(work);
    return GK_OK;
}

int gk_temporal(const uint8_t *prev, const uint8_t *frame, int h, int w, int c,
                const int32_t *table, uint8_t *out) {
    if (c == 3) return temporal(prev, frame, h, w, 3, table, out);
    if (c == 1) return temporal(prev, frame, h, w, 1, table, out);
    return temporal(prev, frame, h, w, c, table, out);
}

void gk_shuffle(const uint8_t *t, int h, int w, int c, int r, uint8_t *out) {
    if (r == 2 && c == 3) shuffle(t, h, w, 3, 2, out);
    else if (r == 2 && c == 1) shuffle(t, h, w, 1, 2, out);
    else shuffle(t, h, w, c, r, out);
}
