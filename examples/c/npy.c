#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc(len > 0 ? (size_t)len : 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: cannot read\n", path);
        return NULL;
    }
    *size = (size_t)len;
    return buf;
}

static int fail(const char *path, const char *why, unsigned char *file) {
    fprintf(stderr, "%s: %s\n", path, why);
    free(file);
    return -1;
}

int npy_read(const char *path, Npy *out) {
    size_t size = 0;
    unsigned char *file = read_file(path, &size);
    if (!file) return -1;
    if (size < 10 || memcmp(file, "\x93NUMPY", 6) != 0) return fail(path, "not an .npy file", file);
    size_t header_start, header_len;
    if (file[6] == 1) {
        header_start = 10;
        header_len = (size_t)file[8] | (size_t)file[9] << 8;
    } else if ((file[6] == 2 || file[6] == 3) && size >= 12) {
        header_start = 12;
        header_len = (size_t)file[8] | (size_t)file[9] << 8 | (size_t)file[10] << 16 | (size_t)file[11] << 24;
    } else {
        return fail(path, "unsupported .npy version", file);
    }
    if (header_len > size - header_start) return fail(path, "truncated .npy header", file);

    /* The header is a Python dict literal; copy it to a C string to search it. */
    char *header = malloc(header_len + 1);
    if (!header) return fail(path, "out of memory", file);
    memcpy(header, file + header_start, header_len);
    header[header_len] = '\0';
    const char *descr = strstr(header, "'descr':");
    const char *quote = descr ? strchr(descr + 8, '\'') : NULL;
    const char *end = quote ? strchr(quote + 1, '\'') : NULL;
    int fortran = strstr(header, "'fortran_order': True") != NULL;
    int ok = end && (size_t)(end - quote - 1) < sizeof out->descr && !fortran;
    if (ok) {
        memcpy(out->descr, quote + 1, (size_t)(end - quote - 1));
        out->descr[end - quote - 1] = '\0';
    }
    free(header);
    if (!ok) return fail(path, "unsupported .npy header (need 'descr' and C order)", file);

    out->file = file;
    out->data = file + header_start + header_len;
    out->bytes = size - header_start - header_len;
    return 0;
}

void npy_free(Npy *npy) {
    free(npy->file);
    npy->file = NULL;
}
