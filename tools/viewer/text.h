/* Helpers shared by the whole viewer: a growable string, a growable array
 * (wv_grow), UTF-8 that is counted in terminal columns and cut without
 * splitting a character, and strings made safe for a terminal, for JSON
 * and for HTML. */
#ifndef WV_TEXT_H
#define WV_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct wv_buf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed; the text is incomplete */
} wv_buf;

void wv_buf_append(wv_buf *b, const char *s, size_t n);
void wv_buf_puts(wv_buf *b, const char *s);
void wv_buf_printf(wv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wv_buf_free(wv_buf *b);
/* The text so far, "" when empty. */
const char *wv_buf_str(const wv_buf *b);

/* wv_grow makes the array *arr of elements of size sz (capacity *cap) hold
 * at least n + 1, doubling; 0, or -1 when memory is short (*arr kept). */
int wv_grow(void **arr, size_t *cap, size_t n, size_t sz);

/* Length in bytes of the UTF-8 sequence starting with byte c (1 for a byte
 * that cannot start one, so loops always advance). */
size_t wv_utf8_len(unsigned char c);
/* Columns s takes: one per character (wide characters are not told apart). */
size_t wv_utf8_width(const char *s);
/* Bytes of s that fit in cols columns. */
size_t wv_utf8_prefix(const char *s, size_t cols);

/* wv_buf_put_safe appends s with what a terminal would interpret (control
 * characters, ESC, DEL, C1 controls, bidirectional overrides) replaced by
 * '.', and newlines by spaces. */
void wv_buf_put_safe(wv_buf *b, const char *s);

/* wv_json_put writes s as a JSON string with its quotes. html_safe also
 * escapes < > & and U+2028/9 so the JSON can sit inside a <script>. */
void wv_json_put(FILE *f, const char *s, bool html_safe);

/* "12.345 ms": a duration or a time stamp in ns as milliseconds. */
void wv_fmt_ms(char *out, size_t size, int64_t ns);

#endif
