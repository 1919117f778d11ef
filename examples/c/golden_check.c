/* Runs a .tflite model through the Ferrolite C API on every golden input of a folder laid out
 * like shared/golden/<model>/ and compares each output byte for byte.
 *
 * usage: golden_check MODEL.tflite GOLDEN_DIR [--litert]
 *   default: TFLM rounding, expected outputs from GOLDEN_DIR/tflm/
 *   --litert: LiteRT rounding, expected outputs from GOLDEN_DIR/
 * Sample k reads input_<k>.npy (or input_<k>_<i>.npy for several inputs); the same for outputs.
 * Exit status: 0 when every output of every sample matches, 1 otherwise. */
#include "ferrolite.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH 4096

static int check(FerroliteStatus status, const char *what) {
    if (status == FERROLITE_STATUS_OK) return 0;
    fprintf(stderr, "%s failed (status %u): %s\n", what, (unsigned)status, ferrolite_last_error());
    return -1;
}

/* The .npy dtype string golden files use for each tensor type. */
static const char *npy_descr(FerroliteType type) {
    switch (type) {
    case FERROLITE_TYPE_INT8: return "|i1";
    case FERROLITE_TYPE_UINT8: return "|u1";
    case FERROLITE_TYPE_INT16: return "<i2";
    case FERROLITE_TYPE_INT32: return "<i4";
    case FERROLITE_TYPE_INT64: return "<i8";
    case FERROLITE_TYPE_FLOAT32: return "<f4";
    case FERROLITE_TYPE_BOOL: return "|b1";
    default: return NULL;
    }
}

/* dir/kind_<k>.npy, or dir/kind_<k>_<i>.npy when the model has several such tensors.
 * Returns -1 (with a message) when the path does not fit. */
static int sample_path(char *out, const char *dir, const char *kind, size_t k, size_t i, size_t count) {
    int n = count == 1 ? snprintf(out, MAX_PATH, "%s/%s_%zu.npy", dir, kind, k)
                       : snprintf(out, MAX_PATH, "%s/%s_%zu_%zu.npy", dir, kind, k, i);
    if (n < 0 || n >= MAX_PATH) {
        fprintf(stderr, "path too long under %s\n", dir);
        return -1;
    }
    return 0;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Loads a golden file and checks it fits the tensor's type and byte size. */
static int load_matching(const char *path, const FerroliteTensorInfo *info, Npy *npy) {
    if (npy_read(path, npy) != 0) return -1;
    const char *want = npy_descr(info->dtype);
    if (!want || strcmp(npy->descr, want) != 0 || npy->bytes != info->bytes) {
        fprintf(stderr, "%s: dtype %s, %zu bytes; the tensor wants %s, %zu bytes\n", path, npy->descr, npy->bytes,
                want ? want : "(unsupported type)", info->bytes);
        npy_free(npy);
        return -1;
    }
    return 0;
}

/* Runs every sample; returns the number of mismatching outputs, or -1 on an error. */
static long run_samples(FerroliteInterpreter *it, const char *golden, const char *expected_dir) {
    size_t n_in = 0, n_out = 0;
    if (check(ferrolite_interpreter_input_count(it, &n_in), "input_count") ||
        check(ferrolite_interpreter_output_count(it, &n_out), "output_count"))
        return -1;
    long mismatches = 0;
    size_t k = 0;
    char path[MAX_PATH];
    for (;; k++) {
        if (sample_path(path, golden, "input", k, 0, n_in)) return -1;
        if (!file_exists(path)) break;
        if (check(ferrolite_interpreter_reset_state(it), "reset_state")) return -1;
        for (size_t i = 0; i < n_in; i++) {
            FerroliteTensorInfo info;
            Npy npy;
            if (sample_path(path, golden, "input", k, i, n_in) ||
                check(ferrolite_interpreter_input_info(it, i, &info), "input_info") ||
                load_matching(path, &info, &npy))
                return -1;
            int failed = check(ferrolite_interpreter_set_input(it, i, npy.data, npy.bytes), "set_input");
            npy_free(&npy);
            if (failed) return -1;
        }
        if (check(ferrolite_interpreter_invoke(it), "invoke")) return -1;
        for (size_t i = 0; i < n_out; i++) {
            FerroliteTensorInfo info;
            Npy npy;
            if (sample_path(path, expected_dir, "output", k, i, n_out) ||
                check(ferrolite_interpreter_output_info(it, i, &info), "output_info") ||
                load_matching(path, &info, &npy))
                return -1;
            unsigned char *got = malloc(info.bytes ? info.bytes : 1);
            int failed = !got || check(ferrolite_interpreter_get_output(it, i, got, info.bytes), "get_output");
            if (!failed && memcmp(got, npy.data, info.bytes) != 0) {
                size_t differ = 0;
                for (size_t b = 0; b < info.bytes; b++) differ += got[b] != npy.data[b];
                fprintf(stderr, "sample %zu output %zu: %zu of %zu bytes differ\n", k, i, differ, info.bytes);
                mismatches++;
            }
            free(got);
            npy_free(&npy);
            if (failed) return -1;
        }
    }
    if (k == 0) {
        fprintf(stderr, "no golden samples: %s not found\n", path);
        return -1;
    }
    printf("%zu samples, %zu inputs, %zu outputs, %ld mismatching outputs\n", k, n_in, n_out, mismatches);
    return mismatches;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "--litert") != 0)) {
        fprintf(stderr, "usage: %s MODEL.tflite GOLDEN_DIR [--litert]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *golden = argv[2];
    int litert = argc == 4;
    char expected_dir[MAX_PATH];
    int len = snprintf(expected_dir, sizeof expected_dir, litert ? "%s" : "%s/tflm", golden);
    if (len < 0 || len >= MAX_PATH) {
        fprintf(stderr, "GOLDEN_DIR too long\n");
        return 2;
    }

    size_t model_size = 0;
    unsigned char *model_bytes = read_file(model_path, &model_size);
    if (!model_bytes) return 1;

    FerroliteInterpreterOptions options = ferrolite_interpreter_options_default();
    options.rounding = litert ? FERROLITE_ROUNDING_LITERT : FERROLITE_ROUNDING_TFLM;
    FerroliteModel *model = NULL;
    FerroliteInterpreter *it = NULL;
    unsigned char *arena = NULL;
    size_t arena_size = 0;
    long mismatches = -1;
    if (check(ferrolite_model_create(model_bytes, model_size, &model), "model_create") ||
        check(ferrolite_arena_size(model, &options, &arena_size), "arena_size"))
        goto done;
    /* aligned_alloc wants a multiple of the alignment. */
    size_t alloc_size = (arena_size + FERROLITE_ARENA_ALIGNMENT - 1) / FERROLITE_ARENA_ALIGNMENT *
                        FERROLITE_ARENA_ALIGNMENT;
    arena = aligned_alloc(FERROLITE_ARENA_ALIGNMENT, alloc_size ? alloc_size : FERROLITE_ARENA_ALIGNMENT);
    if (!arena) {
        fprintf(stderr, "cannot allocate a %zu byte arena\n", arena_size);
        goto done;
    }
    if (check(ferrolite_interpreter_create(model, &options, arena, arena_size, &it), "interpreter_create")) goto done;
    printf("ferrolite %s, %s rounding: %s, arena %zu bytes\n", ferrolite_version(), litert ? "LiteRT" : "TFLM",
           model_path, arena_size);
    mismatches = run_samples(it, golden, expected_dir);

done:
    ferrolite_interpreter_delete(it);
    ferrolite_model_delete(model);
    free(arena);
    free(model_bytes);
    if (mismatches != 0) {
        fprintf(stderr, "FAIL %s\n", model_path);
        return 1;
    }
    printf("PASS %s\n", model_path);
    return 0;
}
