#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static bool reserve(wv_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > (size_t)-1 / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void wv_buf_append(wv_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void wv_buf_puts(wv_buf *b, const char *s)
{
    wv_buf_append(b, s, strlen(s));
}

void wv_buf_printf(wv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void wv_buf_free(wv_buf *b)
{
    free(b->p);
    *b = (wv_buf){0};
}

const char *wv_buf_str(const wv_buf *b)
{
    return b->p ? b->p : "";
}

size_t wv_utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c < 0xf8)
        return 4;
    if (c >= 0xe0)
        return c < 0xf0 ? 3 : 1;
    if (c >= 0xc0)
        return 2;
    return 1;
}

/* The length of the valid UTF-8 sequence at s, or 0 if it is not one (the
 * store only keeps valid UTF-8, but renderers may get a cut string). */
static size_t seq_len(const char *s)
{
    size_t n = wv_utf8_len((unsigned char)s[0]);
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

size_t wv_utf8_width(const char *s)
{
    size_t w = 0;
    while (*s) {
        size_t n = seq_len(s);
        s += n ? n : 1;
        w++;
    }
    return w;
}

size_t wv_utf8_prefix(const char *s, size_t cols)
{
    size_t i = 0;
    while (s[i] && cols > 0) {
        size_t n = seq_len(s + i);
        i += n ? n : 1;
        cols--;
    }
    return i;
}

/* U+202A..U+202E and U+2066..U+2069: bidirectional embeddings, overrides
 * and isolates. */
static bool is_bidi(const unsigned char *s)
{
    return (s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
           (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9);
}

void wv_buf_put_safe(wv_buf *b, const char *s)
{
    while (*s) {
        unsigned char c = (unsigned char)*s;
        size_t n = seq_len(s);
        if (c == '\n' || c == '\t') {
            wv_buf_append(b, " ", 1);
            s++;
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            wv_buf_append(b, ".", 1);
            s++;
        } else if (n == 2 && c == 0xc2 && (unsigned char)s[1] < 0xa0) {
            wv_buf_append(b, ".", 1); /* C1 control */
            s += 2;
        } else if (n == 3 && c == 0xe2 && is_bidi((const unsigned char *)s)) {
            wv_buf_append(b, ".", 1); /* would reorder the rest of the row */
            s += 3;
        } else {
            wv_buf_append(b, s, n);
            s += n;
        }
    }
}

/* The escape for byte or character at s, or NULL to copy it; *n gets the
 * bytes it covers. */
static const char *json_escape(const char *s, bool html_safe, size_t *n, char tmp[8])
{
    unsigned char c = (unsigned char)*s;
    *n = 1;
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '<':
    case '>':
    case '&':
        if (!html_safe)
            return NULL;
        snprintf(tmp, 8, "\\u%04x", c);
        return tmp;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
        snprintf(tmp, 8, "\\u%04x", c);
        return tmp;
    }
    if (c >= 0x80) {
        size_t len = seq_len(s);
        if (len == 0)
            return "\\ufffd"; /* never copy invalid UTF-8 into output */
        *n = len;
        if (html_safe && len == 3 && c == 0xe2 && (unsigned char)s[1] == 0x80 &&
            ((unsigned char)s[2] == 0xa8 || (unsigned char)s[2] == 0xa9))
            return (unsigned char)s[2] == 0xa8 ? "\\u2028" : "\\u2029";
    }
    return NULL;
}

void wv_json_put(FILE *f, const char *s, bool html_safe)
{
    char tmp[8];
    fputc('"', f);
    while (*s) {
        size_t run = 0, n;
        while (s[run] && json_escape(s + run, html_safe, &n, tmp) == NULL)
            run += n;
        fwrite(s, 1, run, f);
        s += run;
        if (*s) {
            fputs(json_escape(s, html_safe, &n, tmp), f);
            s += n;
        }
    }
    fputc('"', f);
}

void wv_fmt_ms(char *out, size_t size, int64_t ns)
{
    snprintf(out, size, "%.3f ms", (double)ns / 1e6);
}

int wv_grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}
