/* What the C benchmarks share: their command line, what they print about
 * themselves, JSON string output, and medians. */
#ifndef WF_BENCH_BENCH_H
#define WF_BENCH_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif

#ifdef __OPTIMIZE__
#define OPTIMIZED "true"
#else
#define OPTIMIZED "false"
#endif

/* The command line of a bench that takes only [--quick]: whether it was
 * given; exits with status 2 and a usage line on anything else. */
static inline bool bench_quick_arg(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") != 0) {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            exit(2);
        }
        quick = true;
    }
    return quick;
}

/* Prints s as a JSON string, quotes included. */
static inline void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n (at most 64) samples; v is left as it was. */
static inline double median(const double *v, int n)
{
    double s[64];
    n = n < 64 ? n : 64;
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

#endif
