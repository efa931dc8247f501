/* A growable string for building reports. Private to weft. */
#ifndef WF_CORE_STRBUF_H
#define WF_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Appends never fail visibly: once memory is short the buffer stops
 * growing and oom is set; wf_strbuf_finish then returns NULL. */
typedef struct wf_strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} wf_strbuf;

/* Makes room for n more bytes at once (a size known in advance saves the
 * doublings). */
void wf_strbuf_reserve(wf_strbuf *b, size_t n);
void wf_strbuf_append(wf_strbuf *b, const char *s, size_t n);
void wf_strbuf_puts(wf_strbuf *b, const char *s);
void wf_strbuf_printf(wf_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with &, <, >, " and ' replaced by HTML entities. */
void wf_strbuf_puts_html(wf_strbuf *b, const char *s);
/* Returns the string (caller frees with wf_free), or NULL after oom. */
char *wf_strbuf_finish(wf_strbuf *b);

#endif
