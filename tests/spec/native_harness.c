/* Runs spec/_native/kernel.c on a plan dumped by spec.native._Plan.dump, without Python:
 * the way to test the kernel built for another CPU (aarch64 under qemu-user).
 *
 *   native_harness PLAN OUT STRIPS   -> writes the output tensor (h, w, c_out) to OUT
 *
 * The structs mirror kernel.c's (the harness is compiled together with it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int32_t kind, kernel, c_in, c_out, output, residual, shift, out_lo, out_hi, n_in, c_out_pad;
    int32_t tab_bytes;
    const void *arrays[13];
} layer_t;
typedef struct { int32_t v[7]; } tensor_t;

int gk_run_strip(const void *tensors, const void *layers, int n_layers, const uint8_t *x0,
                 uint8_t *out, int h, int w, int r0, int r1);

static void *take(FILE *f, size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p || (n && fread(p, 1, n, f) != n)) {
        fprintf(stderr, "short plan file\n");
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    int32_t *hdr = take(f, 5 * sizeof(int32_t));
    int n = hdr[0], h = hdr[1], w = hdr[2], c0 = hdr[3], co = hdr[4], strips = atoi(argv[3]);
    tensor_t *tensors = take(f, (size_t)(n + 1) * sizeof(tensor_t));
    layer_t *layers = calloc((size_t)n, sizeof(layer_t));
    for (int i = 0; i < n; i++) {
        int32_t *ints = take(f, 12 * sizeof(int32_t));
        for (int k = 0; k < 12; k++) (&layers[i].kind)[k] = ints[k];
        for (int k = 0; k < 13; k++) {
            int64_t *nb = take(f, sizeof(int64_t));
            layers[i].arrays[k] = *nb ? take(f, (size_t)*nb) : NULL;
        }
    }
    uint8_t *x0 = take(f, (size_t)h * w * c0), *out = calloc((size_t)h * w * co, 1);
    fclose(f);
    for (int s = 0; s < strips; s++) {
        int r0 = h * s / strips, r1 = h * (s + 1) / strips;
        int err = r0 < r1 ? gk_run_strip(tensors, layers, n, x0, out, h, w, r0, r1) : 0;
        if (err) {
            fprintf(stderr, "gk_run_strip: error %d\n", err);
            return 1;
        }
    }
    f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, (size_t)h * w * co, f) != (size_t)h * w * co) return 2;
    fclose(f);
    return 0;
}
