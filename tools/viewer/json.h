/* The one JSON shape the trace format uses: a flat object on one line whose
 * values are strings, numbers, booleans (or null), read with jansson and
 * laid out as fields. Anything else (nesting, trailing text, a bad escape,
 * a lone surrogate, an integer out of int64's range) is an error with a
 * reason, never a crash. Decoded strings are valid UTF-8: invalid bytes in
 * the line become '?', \u0000 becomes U+FFFD. */
#ifndef WV_JSON_H
#define WV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum wv_jtype { WV_JSTR, WV_JNUM, WV_JBOOL, WV_JNULL } wv_jtype;

typedef struct wv_jfield {
    const char *key; /* decoded, NUL-terminated */
    wv_jtype type;
    const char *str; /* WV_JSTR: decoded, NUL-terminated */
    size_t len;      /* its length in bytes */
    double num;      /* WV_JNUM */
    bool is_int;     /* WV_JNUM written without fraction or exponent (then in int64's range) */
    int64_t i;
    bool b; /* WV_JBOOL */
} wv_jfield;

struct json_t;

/* Reusable between lines: the fields of the last line parsed, and the
 * strings they point to, live here until the next parse or wv_json_free. */
typedef struct wv_json {
    struct json_t *root; /* the last line's object, or NULL */
    char *scratch;       /* the line with its invalid UTF-8 replaced, then */
    size_t scap;         /* strings that held \u0000 */
    wv_jfield *fields;
    size_t nfields, fcap;
} wv_json;

/* wv_json_parse reads the object in s[0..n) into j->fields. Returns 0, or -1
 * with a reason in err (malformed, or out of memory). */
int wv_json_parse(wv_json *j, const char *s, size_t n, char *err, size_t errlen);

/* The field named key (the last one when repeated), or NULL. */
const wv_jfield *wv_json_get(const wv_json *j, const char *key);

void wv_json_free(wv_json *j);

#endif
