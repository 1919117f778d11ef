/* Minimal .npy reader: just what the golden files use (little-endian, C order, v1-v3 header). */
#ifndef FERROLITE_EXAMPLE_NPY_H
#define FERROLITE_EXAMPLE_NPY_H

#include <stddef.h>

typedef struct {
    char descr[16];      /* numpy dtype string, e.g. "|i1", "<i2", "<f4" */
    unsigned char *file; /* the whole file (free with npy_free) */
    const unsigned char *data;
    size_t bytes;        /* bytes of array data after the header */
} Npy;

/* Reads `path`; returns 0 on success, -1 with a message on stderr otherwise. */
int npy_read(const char *path, Npy *out);
void npy_free(Npy *npy);

/* Reads a whole file into a malloc'd buffer; returns NULL (and prints why) on failure. */
unsigned char *read_file(const char *path, size_t *size);

#endif
