#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>

#include "strbuf.h"

static bool reserve(wf_strbuf *b, size_t extra)
{
    if (b->oom)
        return false;
    /* A size that the sums and the doubling below would overflow is out
     * of memory. */
    if (extra > SIZE_MAX / 4 - b->len) {
        b->oom = true;
        return false;
    }
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = wf_realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void wf_strbuf_reserve(wf_strbuf *b, size_t n)
{
    reserve(b, n);
}

void wf_strbuf_append(wf_strbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void wf_strbuf_puts(wf_strbuf *b, const char *s)
{
    wf_strbuf_append(b, s, strlen(s));
}

void wf_strbuf_printf(wf_strbuf *b, const char *fmt, ...)
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

void wf_strbuf_puts_html(wf_strbuf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *ent;
        switch (*s) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            continue;
        }
        wf_strbuf_append(b, run, (size_t)(s - run));
        wf_strbuf_puts(b, ent);
        run = s + 1;
    }
    wf_strbuf_append(b, run, (size_t)(s - run));
}

char *wf_strbuf_finish(wf_strbuf *b)
{
    if (b->oom || !reserve(b, 0)) {
        wf_free(b->p);
        *b = (wf_strbuf){0};
        return NULL;
    }
    char *p = b->p;
    *b = (wf_strbuf){0};
    return p;
}
