/* The rounds of pix2pix.networks.HintPropagation (its _spread), for the compiled candidates.

   Each round every cell takes the sum of its own and its four neighbours' state (zero outside
   the grid), scaled by gate / max(reach sum, 1), plus the seed. The sums are taken in the order
   _spread takes them (centre, up, down, left, right) and the product and the sum are separate
   roundings (built with -ffp-contract=off), so the result equals PyTorch's value for value.
   The state is kept in two buffers padded by one zero cell: no bounds to check, and the 4 x 66
   x 66 floats of one image stay in the L2 cache for all the rounds.

   seed: (batch, 4, h, w) and gate: (batch, 1, h, w), float32, contiguous; out: like seed.
   An image whose reach channel is zero everywhere (no source) is its seed: every round would
   leave it as it is. Returns 0, or -1 when the work buffers could not be allocated. */
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

int hint_spread(const float *seed, const float *gate, float *out, long batch, long h, long w,
                long steps) {
    const long W = w + 2, plane = (h + 2) * W, cells = h * w;
    float *a = (float *)calloc(4 * plane, sizeof(float));
    float *b = (float *)calloc(4 * plane, sizeof(float));
    float *scale = (float *)malloc(cells * sizeof(float));
    if (!a || !b || !scale) {
        free(a); free(b); free(scale);
        return -1;
    }
    for (long n = 0; n < batch; n++) {
        const float *sd = seed + n * 4 * cells, *g = gate + n * cells;
        float *o = out + n * 4 * cells;
        int sources = 0;
        for (long i = 0; i < cells && !sources; i++) sources = sd[3 * cells + i] != 0.0f;
        if (!sources) {
            memcpy(o, sd, 4 * cells * sizeof(float));
            continue;
        }
        memset(a, 0, 4 * plane * sizeof(float));
        memset(b, 0, 4 * plane * sizeof(float));
        for (long c = 0; c < 4; c++)
            for (long y = 0; y < h; y++)
                memcpy(a + c * plane + (y + 1) * W + 1, sd + c * cells + y * w, w * sizeof(float));
        for (long s = 0; s < steps; s++) {
            for (long y = 0; y < h; y++) {
                const float *__restrict__ r = a + 3 * plane + (y + 1) * W + 1;
                const float *__restrict__ gy = g + y * w;
                float *__restrict__ sy = scale + y * w;
                for (long x = 0; x < w; x++) {
                    float t = r[x] + r[x - W] + r[x + W] + r[x - 1] + r[x + 1];
                    sy[x] = gy[x] / (t > 1.0f ? t : 1.0f);
                }
            }
            for (long c = 0; c < 4; c++)
                for (long y = 0; y < h; y++) {
                    const float *__restrict__ r = a + c * plane + (y + 1) * W + 1;
                    const float *__restrict__ sdy = sd + c * cells + y * w;
                    const float *__restrict__ sy = scale + y * w;
                    float *__restrict__ q = b + c * plane + (y + 1) * W + 1;
                    for (long x = 0; x < w; x++) {
                        float t = r[x] + r[x - W] + r[x + W] + r[x - 1] + r[x + 1];
                        q[x] = t * sy[x] + sdy[x];
                    }
                }
            float *swap = a;
            a = b;
            b = swap;
        }
        for (long c = 0; c < 4; c++)
            for (long y = 0; y < h; y++)
                memcpy(o + c * cells + y * w, a + c * plane + (y + 1) * W + 1, w * sizeof(float));
    }
    free(a); free(b); free(scale);
    return 0;
}

#ifdef __cplusplus
}
#endif
