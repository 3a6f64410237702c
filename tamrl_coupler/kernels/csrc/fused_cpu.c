/* Fused elementwise stages of the member-batched ensemble on a CPU (float32), called through ctypes.
 *
 * Why: between its batched GEMMs an LSTM step is a chain of elementwise stages (FiLM, five sigmoid/tanh per
 * hidden unit, the cell update, FiLM again, two-output heads, softplus, the ensemble mean and spread). As separate
 * torch calls each stage streams the block through memory once more; here each group is one pass, with a vectorised
 * exponential. Written with GCC/Clang vector extensions (8 floats), compiled twice -- for AVX2+FMA and for the
 * baseline instruction set -- and chosen at run time, so the same binary runs on any x86-64 (and other targets get
 * the generic version).
 *
 * Conventions: gate pre-activations come in the order (i, f, o, s) with s = -2 g (the weights are stacked that way,
 * tamrl_coupler/model/kernels.py), so tanh(g) = 1 - 2 sigmoid(s); tanh(c) = 1 - 2 sigmoid(-2 c). Strides are in
 * elements; the innermost dimension is contiguous. The exponential is Cephes' expf (range reduction by ln 2 and a
 * degree-6 polynomial, ~1 ulp); with AVX2 the reciprocals are the hardware estimate refined by one Newton step
 * (~2 ulp). Results differ from torch's own kernels by ~1e-7 relative.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define INLINE static inline __attribute__((always_inline))

INLINE v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
INLINE void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
#define splat(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
INLINE v8f vmax(v8f a, v8f b) { v8i m = a < b; return (v8f)(((v8i)a & ~m) | ((v8i)b & m)); }
INLINE v8f vmin(v8f a, v8f b) { v8i m = a > b; return (v8f)(((v8i)a & ~m) | ((v8i)b & m)); }

/* e^x: x = n ln2 + r (Cody-Waite), e^r by Cephes' polynomial, 2^n through the exponent bits. The argument is
 * clamped to [-87, 40]: e^40 = 2.4e17 already saturates every logistic and tanh below, and keeps products of two
 * such terms finite (the reciprocals below may be approximate, where inf * 0 would give NaN). */
#define EXP_MAX 40.0f
INLINE v8f vexp(v8f x) {
    x = vmin(vmax(x, splat(-87.0f)), splat(EXP_MAX));
    v8f n = (x * splat(1.44269504088896341f) + splat(12582912.0f)) - splat(12582912.0f); /* round to nearest */
    v8f r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    v8f p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
    return p * (v8f)e;
}
INLINE float sexp(float x) {
    x = x < -87.0f ? -87.0f : (x > EXP_MAX ? EXP_MAX : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}
INLINE float hsum(v8f a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

/* Each kernel twice: for AVX2 + FMA (hardware reciprocal estimate), and for the baseline instruction set. */
#define KATTR
#define NAME(f) f##_base
#define RECIP(x) (splat(1.0f) / (x))
#include "fused_cpu_kernels.h"
#undef KATTR
#undef NAME
#undef RECIP

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_WIDE 1
__attribute__((target("avx2,fma"))) INLINE v8f rcp_nr(v8f x) {
    v8f r = __builtin_ia32_rcpps256(x);
    return r * (splat(2.0f) - x * r); /* one Newton step: ~2 ulp */
}
#define KATTR __attribute__((target("avx2,fma")))
#define NAME(f) f##_wide
#define RECIP(x) rcp_nr(x)
#include "fused_cpu_kernels.h"
#undef KATTR
#undef NAME
#undef RECIP
#else
#define HAVE_WIDE 0
#define lstm_cell_wide lstm_cell_base
#define cell_heads_wide cell_heads_base
#define lstm_input_wide lstm_input_base
#define tanh_of_wide tanh_of_base
#endif

/* Member outputs (M, n, K) -> float64 rows of est (row stride est_s): gpp and reco means, their spreads, the
 * spread of gpp - reco, and (K > 2, rows > 5) the mean of the third output. Spreads: population standard
 * deviation, two passes. */
static void reduce_members(int64_t M, int64_t n, int64_t K, const float *out, double *est, int64_t est_s,
                           int64_t rows) {
    for (int64_t i = 0; i < n; i++) {
        double sg = 0.0, sr = 0.0, sf = 0.0;
        for (int64_t m = 0; m < M; m++) {
            const float *o = out + (m * n + i) * K;
            sg += o[0];
            sr += o[1];
            if (K > 2) sf += o[2];
        }
        double mg = sg / (double)M, mr = sr / (double)M, mn = mg - mr;
        double vg = 0.0, vr = 0.0, vn = 0.0;
        for (int64_t m = 0; m < M; m++) {
            const float *o = out + (m * n + i) * K;
            double dg = (double)o[0] - mg, dr = (double)o[1] - mr, dn = ((double)o[0] - (double)o[1]) - mn;
            vg += dg * dg;
            vr += dr * dr;
            vn += dn * dn;
        }
        est[i] = mg;
        est[est_s + i] = mr;
        est[2 * est_s + i] = sqrt(vg / (double)M);
        est[3 * est_s + i] = sqrt(vr / (double)M);
        est[4 * est_s + i] = sqrt(vn / (double)M);
        if (K > 2 && rows > 5) est[5 * est_s + i] = sf / (double)M;
    }
}

/* Network features of N rows of raw drivers x (row stride xs; NaN = missing), as FeatureEncoder followed by
 * derived_features (tamrl_coupler/model/features.py): per continuous driver its standardised value (0 where
 * missing; log1p first where log_mask) and a missing flag; per categorical driver a one-hot of its class and a
 * missing flag; then the derived inputs of period index pidx and latitude lat: sin/cos of the mid-period day of
 * the year (derived & 1), latitude / 90 and day length / 24 h (derived & 2), top-of-atmosphere insolation / 400 W m-2
 * (derived & 4). daily: periods are days, else months. */
static double py_fmod(double a, double b) {
    double r = fmod(a, b);
    return (r != 0.0 && ((r < 0.0) != (b < 0.0))) ? r + b : r;
}

void tamrl_features(int64_t N, int64_t D, const float *x, int64_t xs, const float *mean, const float *std,
                    const int64_t *cont_idx, int64_t nc, const uint8_t *log_mask, const int64_t *cat_idx,
                    const int64_t *cat_k, int64_t ncat, const int64_t *pidx, const float *lat, int64_t derived,
                    int64_t daily, float *out, int64_t F) {
    const float two_pi_year = (float)(2.0 * 3.14159265358979323846 / 365.25);
    const float deg = (float)(3.14159265358979323846 / 180.0), pi = (float)3.14159265358979323846;
    (void)D;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * xs;
        float *o = out + r * F;
        for (int64_t p = 0; p < nc; p++) {
            int64_t j = cont_idx[p];
            float v = xr[j];
            int miss = v != v;
            if (log_mask[j]) v = log1pf(v > 0.0f ? v : 0.0f);
            o[p] = miss ? 0.0f : (v - mean[j]) / std[j];
            o[nc + p] = (float)miss;
        }
        int64_t col = 2 * nc;
        for (int64_t q = 0; q < ncat; q++) {
            float v = xr[cat_idx[q]];
            int64_t k = cat_k[q];
            int valid = v >= 0.0f && v < (float)k;
            int64_t cls = valid ? (int64_t)v : -1;
            for (int64_t c = 0; c < k; c++) o[col + c] = (float)(c == cls);
            o[col + k] = (float)!valid;
            col += k + 1;
        }
        if (!derived) continue;
        float doy;
        if (daily) {
            doy = (float)py_fmod((double)pidx[r] + 0.5, 365.2425);
        } else {
            int64_t mth = pidx[r] % 12;
            doy = ((float)(mth < 0 ? mth + 12 : mth) + 0.5f) * (365.25f / 12.0f);
        }
        if (derived & 1) {
            float ang = doy * two_pi_year;
            o[col++] = sinf(ang);
            o[col++] = cosf(ang);
        }
        if (derived & 2) {
            float decl = -0.40928f * cosf((doy + 10.0f) * two_pi_year);
            float cosw = -tanf(lat[r] * deg) * tanf(decl);
            cosw = cosw < -1.0f ? -1.0f : (cosw > 1.0f ? 1.0f : cosw);
            o[col++] = lat[r] / 90.0f;
            o[col++] = acosf(cosw) / pi;
        }
        if (derived & 4) { /* daily-mean top-of-atmosphere insolation / 400 W m-2 (1361 W m-2 solar constant) */
            float g = doy * (float)(2.0 * 3.14159265358979323846 / 365.0);
            float dec = 0.006918f - 0.399912f * cosf(g) + 0.070257f * sinf(g) - 0.006758f * cosf(2.0f * g)
                        + 0.000907f * sinf(2.0f * g) - 0.002697f * cosf(3.0f * g) + 0.00148f * sinf(3.0f * g);
            float ecc = 1.000110f + 0.034221f * cosf(g) + 0.001280f * sinf(g) + 0.000719f * cosf(2.0f * g)
                        + 0.000077f * sinf(2.0f * g);
            float phi = lat[r] * deg;
            float cw = -tanf(phi) * tanf(dec);
            cw = cw < -1.0f ? -1.0f : (cw > 1.0f ? 1.0f : cw);
            float h0 = acosf(cw);
            float q = 1361.0f * ecc / pi * (h0 * sinf(phi) * sinf(dec) + cosf(phi) * cosf(dec) * sinf(h0));
            o[col++] = (q > 0.0f ? q : 0.0f) / 400.0f;
        }
    }
}

static int use_wide(void) {
#if HAVE_WIDE
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* The exported entry points (ctypes). */
static int wide = -1;
static inline int pick(void) {
    if (wide < 0) wide = use_wide();
    return wide;
}

int tamrl_fused_wide(void) { return pick(); }

void tamrl_lstm_cell(int64_t B, int64_t n, int64_t H, const float *gates, const float *c, int64_t c_sb, int64_t c_sn,
                     float *c_out, int64_t co_sb, int64_t co_sn, float *h_out, int64_t ho_sb, int64_t ho_sn) {
    (pick() ? lstm_cell_wide : lstm_cell_base)(B, n, H, gates, c, c_sb, c_sn, c_out, co_sb, co_sn, h_out, ho_sb,
                                               ho_sn);
}

void tamrl_cell_heads(int64_t M, int64_t n, int64_t H, int64_t K, const float *gates, const float *c, int64_t c_sm,
                      int64_t c_sn, float *c_out, int64_t co_sm, int64_t co_sn, float *h_out, int64_t ho_sm,
                      int64_t ho_sn, const float *z, int64_t z_sm, int64_t z_sn, int64_t E, const float *wf,
                      int64_t ws, const float *bf, int64_t col0, const float *w, const float *b, float *out) {
    (pick() ? cell_heads_wide : cell_heads_base)(M, n, H, K, gates, c, c_sm, c_sn, c_out, co_sm, co_sn, h_out, ho_sm,
                                                 ho_sn, z, z_sm, z_sn, E, wf, ws, bf, col0, w, b, out);
}

void tamrl_lstm_input(int64_t M, int64_t n, int64_t H, const float *pre, int64_t p_sm, int64_t p_sn, const float *z,
                      int64_t z_sm, int64_t z_sn, int64_t E, const float *wf, int64_t ws, const float *bf,
                      int64_t col0, const float *h, int64_t h_sm, int64_t h_sn, float *xh) {
    (pick() ? lstm_input_wide : lstm_input_base)(M, n, H, pre, p_sm, p_sn, z, z_sm, z_sn, E, wf, ws, bf, col0, h,
                                                 h_sm, h_sn, xh);
}

void tamrl_tanh_of(int64_t count, float *x) { (pick() ? tanh_of_wide : tanh_of_base)(count, x); }

void tamrl_reduce_members(int64_t M, int64_t n, int64_t K, const float *out, double *est, int64_t est_s,
                          int64_t rows) {
    reduce_members(M, n, K, out, est, est_s, rows);
}

/* A Python extension module only so that the build and install machinery carries the library; the functions
 * above are called through ctypes (tamrl_coupler/model/fused_cpu.py). */
static struct PyModuleDef fused_module = {PyModuleDef_HEAD_INIT, "_fused_cpu",
                                          "Fused CPU kernels of the batched ensemble (called through ctypes).", -1,
                                          NULL};

PyMODINIT_FUNC PyInit__fused_cpu(void) { return PyModule_Create(&fused_module); }
