/* The kernel bodies, included twice by fused_cpu.c with NAME (suffix), KATTR (target attribute) and RECIP (vector
 * reciprocal) defined. Scalar tails (H not a multiple of 8) use the plain formulas. */

/* tanh(a) = 1 - 2 sigmoid(s), given s = -2 a. */
KATTR INLINE v8f NAME(vtanh_of)(v8f s) { return splat(1.0f) - splat(2.0f) * RECIP(splat(1.0f) + vexp(-s)); }

/* One LSTM cell row of H units: gates g (i, f, o, s = -2 g), cell c -> c_out, h_out. Five exponentials and three
 * reciprocals per unit: sigmoid(f) = 1 / (1 + e^-f); i tanh(g) = (E - 1) / ((1 + e^-i)(E + 1)) with E = e^2g;
 * o tanh(c') = (C - 1) / ((1 + e^-o)(C + 1)) with C = e^2c'. In two passes over the row (c', then h') so that the
 * exponentials of neighbouring blocks are independent and overlap (one block alone is latency-bound); h_out holds
 * 1 + e^-o in between. */
KATTR INLINE void NAME(cell_row)(int64_t H, const float *g, const float *c, float *c_out, float *h_out) {
    const v8f one = splat(1.0f);
    int64_t k = 0;
#pragma GCC unroll 3
    for (k = 0; k + 8 <= H; k += 8) {
        v8f ei = vexp(-load8(g + k)), ef = vexp(-load8(g + H + k)), eo = vexp(-load8(g + 2 * H + k));
        v8f eg = vexp(-load8(g + 3 * H + k));
        store8(c_out + k, RECIP(one + ef) * load8(c + k) + (eg - one) * RECIP((one + ei) * (eg + one)));
        store8(h_out + k, one + eo);
    }
#pragma GCC unroll 3
    for (k = 0; k + 8 <= H; k += 8) {
        v8f ec = vexp(splat(2.0f) * load8(c_out + k));
        store8(h_out + k, (ec - one) * RECIP(load8(h_out + k) * (ec + one)));
    }
    for (; k < H; k++) {
        float ig = 1.0f / (1.0f + sexp(-g[k])), fg = 1.0f / (1.0f + sexp(-g[H + k]));
        float og = 1.0f / (1.0f + sexp(-g[2 * H + k])), tg = 1.0f - 2.0f / (1.0f + sexp(-g[3 * H + k]));
        float cn = fg * c[k] + ig * tg;
        c_out[k] = cn;
        h_out[k] = og * (1.0f - 2.0f / (1.0f + sexp(2.0f * cn)));
    }
}

/* B x n rows: gates (B, n, 4H) contiguous; c, c_out, h_out (B, n, H) views with strides (sb, sn). */
KATTR static void NAME(lstm_cell)(int64_t B, int64_t n, int64_t H, const float *gates, const float *c, int64_t c_sb,
                                  int64_t c_sn, float *c_out, int64_t co_sb, int64_t co_sn, float *h_out,
                                  int64_t ho_sb, int64_t ho_sn) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < n; i++)
            NAME(cell_row)(H, gates + (b * n + i) * 4 * H, c + b * c_sb + i * c_sn, c_out + b * co_sb + i * co_sn,
                           h_out + b * ho_sb + i * ho_sn);
}

/* FiLM of one member and cell from its task embedding: gb[0:2H] = b[col0 : col0 + 2H] + z @ W[:, col0 : col0 + 2H]
 * (the gain columns carry the 1 of 1 + g), W (E, ws) row-major, z (E,). */
KATTR INLINE void NAME(film_row)(int64_t E, int64_t H, const float *z, const float *w, int64_t ws, const float *b,
                                 float *gb) {
    int64_t k = 0;
    for (; k + 32 <= 2 * H; k += 32) { /* four independent accumulators: the FMA chains overlap */
        v8f a0 = load8(b + k), a1 = load8(b + k + 8), a2 = load8(b + k + 16), a3 = load8(b + k + 24);
        for (int64_t e = 0; e < E; e++) {
            const float *we = w + e * ws + k;
            v8f ze = splat(z[e]);
            a0 += ze * load8(we);
            a1 += ze * load8(we + 8);
            a2 += ze * load8(we + 16);
            a3 += ze * load8(we + 24);
        }
        store8(gb + k, a0);
        store8(gb + k + 8, a1);
        store8(gb + k + 16, a2);
        store8(gb + k + 24, a3);
    }
    for (; k + 8 <= 2 * H; k += 8) {
        v8f acc = load8(b + k);
        for (int64_t e = 0; e < E; e++) acc += splat(z[e]) * load8(w + e * ws + k);
        store8(gb + k, acc);
    }
    for (; k < 2 * H; k++) {
        float a = b[k];
        for (int64_t e = 0; e < E; e++) a += z[e] * w[e * ws + k];
        gb[k] = a;
    }
}

/* The forward step after its gate GEMM, per member m and cell i: the cell (the next c and h into c_out, h_out, or
 * nowhere when they are NULL: an evaluation that does not commit), FiLM on h (from the embedding z:
 * (M, n, E) view with strides z_sm, z_sn; W (M, E, ws), b (M, ws), columns col0.. of gain then bias; or none when z
 * is NULL), and the K linear heads (W (M, K, H), b (M, K)) -> out (M, n, K) contiguous (softplus and scale follow
 * in torch: two outputs per member and cell). */
KATTR static void NAME(cell_heads)(int64_t M, int64_t n, int64_t H, int64_t K, const float *gates, const float *c,
                                   int64_t c_sm, int64_t c_sn, float *c_out, int64_t co_sm, int64_t co_sn,
                                   float *h_out, int64_t ho_sm, int64_t ho_sn, const float *z, int64_t z_sm,
                                   int64_t z_sn, int64_t E, const float *wf, int64_t ws, const float *bf, int64_t col0,
                                   const float *w, const float *b, float *out) {
    float gb[2 * H], c_row[H], h_row[H]; /* the next state's rows when the caller does not keep it (NULL) */
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < n; i++) {
            float *hr = h_out ? h_out + m * ho_sm + i * ho_sn : h_row;
            NAME(cell_row)(H, gates + (m * n + i) * 4 * H, c + m * c_sm + i * c_sn,
                           c_out ? c_out + m * co_sm + i * co_sn : c_row, hr);
            if (z) NAME(film_row)(E, H, z + m * z_sm + i * z_sn, wf + m * E * ws + col0, ws, bf + m * ws + col0, gb);
            const float *gr = gb, *br = gb + H;
            float *orow = out + (m * n + i) * K;
            for (int64_t j = 0; j < K; j++) {
                const float *wj = w + (m * K + j) * H;
                v8f acc = splat(0.0f);
                float a = 0.0f;
                int64_t k = 0;
                if (z) {
                    for (; k + 8 <= H; k += 8) acc += (load8(hr + k) * load8(gr + k) + load8(br + k)) * load8(wj + k);
                    for (; k < H; k++) a += (hr[k] * gr[k] + br[k]) * wj[k];
                } else {
                    for (; k + 8 <= H; k += 8) acc += load8(hr + k) * load8(wj + k);
                    for (; k < H; k++) a += hr[k] * wj[k];
                }
                orow[j] = a + hsum(acc) + b[m * K + j];
            }
        }
}

/* u = max(0, gain * pre + bias) (FiLM from z as in cell_heads; max(0, pre) when z is NULL) into xh[..., :H], h into
 * xh[..., H:]; pre, h are (M, n, H) views (strides sm, sn), xh (M, n, 2H) contiguous. */
KATTR static void NAME(lstm_input)(int64_t M, int64_t n, int64_t H, const float *pre, int64_t p_sm, int64_t p_sn,
                                   const float *z, int64_t z_sm, int64_t z_sn, int64_t E, const float *wf, int64_t ws,
                                   const float *bf, int64_t col0, const float *h, int64_t h_sm, int64_t h_sn,
                                   float *xh) {
    float gb[2 * H];
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < n; i++) {
            const float *pr = pre + m * p_sm + i * p_sn, *hr = h + m * h_sm + i * h_sn;
            float *u = xh + (m * n + i) * 2 * H;
            int64_t k = 0;
            if (z) {
                NAME(film_row)(E, H, z + m * z_sm + i * z_sn, wf + m * E * ws + col0, ws, bf + m * ws + col0, gb);
                const float *gr = gb, *br = gb + H;
                for (; k + 8 <= H; k += 8)
                    store8(u + k, vmax(load8(pr + k) * load8(gr + k) + load8(br + k), splat(0.0f)));
                for (; k < H; k++) {
                    float v = pr[k] * gr[k] + br[k];
                    u[k] = v > 0.0f ? v : 0.0f;
                }
            } else {
                for (; k + 8 <= H; k += 8) store8(u + k, vmax(load8(pr + k), splat(0.0f)));
                for (; k < H; k++) u[k] = pr[k] > 0.0f ? pr[k] : 0.0f;
            }
            memcpy(u + H, hr, (size_t)H * sizeof(float));
        }
}

/* In place: x = tanh(a) from x = -2 a (count contiguous floats). */
KATTR static void NAME(tanh_of)(int64_t count, float *x) {
    int64_t k = 0;
    for (; k + 8 <= count; k += 8) store8(x + k, NAME(vtanh_of)(load8(x + k)));
    for (; k < count; k++) x[k] = 1.0f - 2.0f / (1.0f + sexp(-x[k]));
}
