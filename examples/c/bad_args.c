/* Every Ferrolite C API function given bad arguments must return an error status with a
 * message, never crash: NULL pointers, truncated and corrupted models, too-small arenas, wrong
 * tensor indices, wrong byte counts, bad option values.
 *
 * usage: bad_args MODEL.tflite   (any valid model with one input and one output; a small one
 * keeps the corruption sweep fast). Exit status 0 when every check holds. */
#include "ferrolite.h"
#include "npy.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

/* Checks that `status` is `want`; for errors also that a message was recorded. */
static void expect_status(FerroliteStatus status, FerroliteStatus want, const char *what, int line) {
    const char *message = ferrolite_last_error();
    if (status != want) {
        fprintf(stderr, "line %d: %s: status %u, expected %u (last error: %s)\n", line, what, (unsigned)status,
                (unsigned)want, message);
        failures++;
    } else if (want != FERROLITE_STATUS_OK && (message == NULL || message[0] == '\0')) {
        fprintf(stderr, "line %d: %s: failed without a message\n", line, what);
        failures++;
    }
}
#define EXPECT(call, want) expect_status((call), (want), #call, __LINE__)
#define EXPECT_TRUE(cond)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "line %d: expected %s\n", __LINE__, #cond);    \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* The message of the last failure mentions `text`. */
static void expect_message(const char *text, int line) {
    if (!strstr(ferrolite_last_error(), text)) {
        fprintf(stderr, "line %d: last error \"%s\" does not mention \"%s\"\n", line, ferrolite_last_error(), text);
        failures++;
    }
}
#define EXPECT_MESSAGE(text) expect_message((text), __LINE__)

static void *aligned_arena(size_t size) {
    size_t rounded = (size + FERROLITE_ARENA_ALIGNMENT - 1) / FERROLITE_ARENA_ALIGNMENT * FERROLITE_ARENA_ALIGNMENT;
    return aligned_alloc(FERROLITE_ARENA_ALIGNMENT, rounded ? rounded : FERROLITE_ARENA_ALIGNMENT);
}

/* How far corrupted models got: loaded, then also invoked. */
static size_t corrupt_loaded = 0, corrupt_invoked = 0;

/* Loads, plans and runs whatever `bytes` holds; only crashes would be failures. */
static void try_everything(const unsigned char *bytes, size_t size) {
    FerroliteModel *model = NULL;
    if (ferrolite_model_create(bytes, size, &model) != FERROLITE_STATUS_OK) {
        EXPECT_TRUE(model == NULL);
        return;
    }
    corrupt_loaded++;
    size_t arena_size = 0;
    if (ferrolite_arena_size(model, NULL, &arena_size) == FERROLITE_STATUS_OK && arena_size < (64u << 20)) {
        void *arena = aligned_arena(arena_size);
        FerroliteInterpreter *it = NULL;
        if (arena && ferrolite_interpreter_create(model, NULL, arena, arena_size, &it) == FERROLITE_STATUS_OK) {
            corrupt_invoked += ferrolite_interpreter_invoke(it) == FERROLITE_STATUS_OK;
            ferrolite_interpreter_delete(it);
        }
        free(arena);
    }
    ferrolite_model_delete(model);
}

static void *fail_on_other_thread(void *unused) {
    (void)unused;
    (void)ferrolite_model_create(NULL, 0, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.tflite\n", argv[0]);
        return 2;
    }
    size_t size = 0;
    unsigned char *bytes = read_file(argv[1], &size);
    if (!bytes) return 1;
    const char *version = ferrolite_version();
    EXPECT_TRUE(version != NULL && version[0] != '\0');
    EXPECT_TRUE(ferrolite_last_error() != NULL && ferrolite_last_error()[0] == '\0');

    /* Models: NULL pointers, impossible sizes, every truncation, every single-byte corruption. */
    FerroliteModel *model = (FerroliteModel *)&failures; /* must be reset to NULL on failure */
    EXPECT(ferrolite_model_create(NULL, size, &model), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_TRUE(model == NULL);
    EXPECT_MESSAGE("data is NULL");
    EXPECT(ferrolite_model_create(bytes, size, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_model_create(bytes, SIZE_MAX, &model), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_model_create(bytes, 0, &model), FERROLITE_STATUS_INVALID_MODEL);
    EXPECT(ferrolite_model_create(bytes, size / 2, &model), FERROLITE_STATUS_INVALID_MODEL);
    EXPECT_TRUE(model == NULL);
    for (size_t len = 0; len < size; len++) {
        FerroliteStatus status = ferrolite_model_create(bytes, len, &model);
        if (status == FERROLITE_STATUS_OK) {
            fprintf(stderr, "a model truncated to %zu of %zu bytes was accepted\n", len, size);
            failures++;
            ferrolite_model_delete(model);
        }
    }
    unsigned char *corrupt = malloc(size);
    for (size_t at = 0; corrupt && at < size; at++) {
        memcpy(corrupt, bytes, size);
        corrupt[at] ^= 0xA5;
        try_everything(corrupt, size);
    }
    free(corrupt);
    printf("corrupting each of %zu bytes: %zu models loaded, %zu of them invoked\n", size, corrupt_loaded,
           corrupt_invoked);

    /* Error messages are per thread: a failure elsewhere leaves this thread's message alone. */
    EXPECT(ferrolite_model_create(bytes, 3, &model), FERROLITE_STATUS_INVALID_MODEL);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", ferrolite_last_error());
    pthread_t other;
    EXPECT_TRUE(pthread_create(&other, NULL, fail_on_other_thread, NULL) == 0 && pthread_join(other, NULL) == 0);
    EXPECT_TRUE(strcmp(mine, ferrolite_last_error()) == 0);

    EXPECT(ferrolite_model_create(bytes, size, &model), FERROLITE_STATUS_OK);
    if (model == NULL) return 1;

    /* Arena size and options. */
    size_t needed = 0;
    FerroliteInterpreterOptions options = ferrolite_interpreter_options_default();
    EXPECT_TRUE(options.rounding == FERROLITE_ROUNDING_TFLM);
    EXPECT(ferrolite_arena_size(NULL, NULL, &needed), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_MESSAGE("model is NULL");
    EXPECT(ferrolite_arena_size(model, NULL, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    options.rounding = 7;
    EXPECT(ferrolite_arena_size(model, &options, &needed), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_MESSAGE("rounding");
    options.rounding = FERROLITE_ROUNDING_LITERT;
    options.pack_weights = 2;
    EXPECT(ferrolite_arena_size(model, &options, &needed), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_MESSAGE("pack_weights");
    options.pack_weights = 1;
    EXPECT(ferrolite_arena_size(model, &options, &needed), FERROLITE_STATUS_OK);
    options.pack_weights = 0;
    EXPECT(ferrolite_arena_size(model, &options, &needed), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_arena_size(model, NULL, &needed), FERROLITE_STATUS_OK);
    EXPECT_TRUE(needed > 0);

    /* Interpreters: NULLs, bad options, arenas too small by one byte or overlapping the model. */
    unsigned char *arena = aligned_arena(needed + 64);
    FerroliteInterpreter *it = (FerroliteInterpreter *)&failures;
    EXPECT(ferrolite_interpreter_create(NULL, NULL, arena, needed, &it), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_TRUE(it == NULL);
    EXPECT(ferrolite_interpreter_create(model, NULL, NULL, needed, &it), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_create(model, NULL, arena, needed, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_create(model, NULL, arena, SIZE_MAX, &it), FERROLITE_STATUS_INVALID_ARGUMENT);
    options.rounding = 2;
    EXPECT(ferrolite_interpreter_create(model, &options, arena, needed, &it), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_create(model, NULL, arena, 0, &it), FERROLITE_STATUS_ARENA_TOO_SMALL);
    EXPECT(ferrolite_interpreter_create(model, NULL, arena, needed - 1, &it), FERROLITE_STATUS_ARENA_TOO_SMALL);
    EXPECT_MESSAGE("arena too small");
    EXPECT_TRUE(it == NULL);
    EXPECT(ferrolite_interpreter_create(model, NULL, bytes + 1, size - 1, &it), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT_MESSAGE("overlaps");
    /* Exactly the reported size is enough, and the model handle may go before the interpreter. */
    EXPECT(ferrolite_interpreter_create(model, NULL, arena, needed, &it), FERROLITE_STATUS_OK);
    ferrolite_model_delete(model);
    if (it == NULL) return 1;
    size_t used = 0;
    EXPECT(ferrolite_interpreter_arena_used(it, &used), FERROLITE_STATUS_OK);
    EXPECT_TRUE(used == needed);
    EXPECT(ferrolite_interpreter_arena_used(NULL, &used), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_arena_used(it, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);

    /* Tensor queries: NULLs and indices past the end. */
    size_t n_in = 0, n_out = 0;
    EXPECT(ferrolite_interpreter_input_count(it, &n_in), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_output_count(it, &n_out), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_input_count(NULL, &n_in), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_output_count(it, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    FerroliteTensorInfo in_info, out_info;
    EXPECT(ferrolite_interpreter_input_info(it, 0, &in_info), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_output_info(it, 0, &out_info), FERROLITE_STATUS_OK);
    EXPECT_TRUE(in_info.rank >= 1 && in_info.rank <= FERROLITE_MAX_RANK && in_info.bytes > 0);
    EXPECT(ferrolite_interpreter_input_info(it, n_in, &in_info), FERROLITE_STATUS_NO_SUCH_TENSOR);
    EXPECT_MESSAGE("out of range");
    EXPECT(ferrolite_interpreter_output_info(it, SIZE_MAX, &out_info), FERROLITE_STATUS_NO_SUCH_TENSOR);
    EXPECT(ferrolite_interpreter_input_info(NULL, 0, &in_info), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_output_info(it, 0, NULL), FERROLITE_STATUS_INVALID_ARGUMENT);

    /* Copies: wrong byte counts, wrong indices, NULL buffers. */
    unsigned char *in = calloc(1, in_info.bytes + 1), *out = calloc(1, out_info.bytes + 1);
    EXPECT(ferrolite_interpreter_set_input(it, 0, in, in_info.bytes + 1), FERROLITE_STATUS_SIZE_MISMATCH);
    EXPECT_MESSAGE("bytes");
    EXPECT(ferrolite_interpreter_set_input(it, 0, in, in_info.bytes - 1), FERROLITE_STATUS_SIZE_MISMATCH);
    EXPECT(ferrolite_interpreter_set_input(it, 0, in, 0), FERROLITE_STATUS_SIZE_MISMATCH);
    EXPECT(ferrolite_interpreter_set_input(it, 0, NULL, in_info.bytes), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_set_input(it, n_in, in, in_info.bytes), FERROLITE_STATUS_NO_SUCH_TENSOR);
    EXPECT(ferrolite_interpreter_set_input(NULL, 0, in, in_info.bytes), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_set_input(it, 0, in, in_info.bytes), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_invoke(NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_invoke(it), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_get_output(it, 0, out, out_info.bytes + 1), FERROLITE_STATUS_SIZE_MISMATCH);
    EXPECT(ferrolite_interpreter_get_output(it, 0, out, out_info.bytes - 1), FERROLITE_STATUS_SIZE_MISMATCH);
    EXPECT(ferrolite_interpreter_get_output(it, 0, NULL, out_info.bytes), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_get_output(it, n_out, out, out_info.bytes), FERROLITE_STATUS_NO_SUCH_TENSOR);
    EXPECT(ferrolite_interpreter_get_output(NULL, 0, out, out_info.bytes), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_get_output(it, 0, out, out_info.bytes), FERROLITE_STATUS_OK);
    EXPECT(ferrolite_interpreter_reset_state(NULL), FERROLITE_STATUS_INVALID_ARGUMENT);
    EXPECT(ferrolite_interpreter_reset_state(it), FERROLITE_STATUS_OK);

    /* Deleting NULL is a no-op. */
    ferrolite_interpreter_delete(NULL);
    ferrolite_model_delete(NULL);
    ferrolite_interpreter_delete(it);
    free(in);
    free(out);
    free(arena);
    free(bytes);
    if (failures) {
        fprintf(stderr, "FAIL: %d bad-argument checks failed\n", failures);
        return 1;
    }
    printf("PASS: every bad-argument check returned its error\n");
    return 0;
}
