/* Small byte helpers shared inside weft (runtime and standard actors):
 * FNV-1a hashing and lower-case hex. Private to weft. */
#ifndef WF_CORE_BYTES_H
#define WF_CORE_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits, over p[0..n): for hash tables, not for security. */
static inline uint64_t wf__fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* Writes p[0..n) as 2n lower-case hex digits at out (no NUL); returns the
 * end. */
static inline char *wf__hex(char *out, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *out++ = digits[b[i] >> 4];
        *out++ = digits[b[i] & 15];
    }
    return out;
}

/* Writes v as 16 hex digits (or, trimmed, without its leading zeros but
 * at least one digit); returns the end (no NUL). */
static inline char *wf__hex64(char *out, uint64_t v, int trim)
{
    static const char digits[] = "0123456789abcdef";
    int i = 60;
    if (trim)
        while (i > 0 && ((v >> i) & 15) == 0)
            i -= 4;
    for (; i >= 0; i -= 4)
        *out++ = digits[(v >> i) & 15];
    return out;
}

#endif
