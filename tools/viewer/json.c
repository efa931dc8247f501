/* A trace line read by jansson (Debian's libjansson), then laid out as the
 * flat fields the viewer reads. jansson is strict JSON: it refuses what the
 * format never holds (nesting is refused here, after it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "text.h"

/* Makes sure j->scratch holds n bytes; -1 when out of memory. */
static int scratch_room(wv_json *j, size_t n)
{
    if (n <= j->scap)
        return 0;
    char *p = realloc(j->scratch, n);
    if (p == NULL)
        return -1;
    j->scratch = p;
    j->scap = n;
    return 0;
}

/* The length of a valid UTF-8 sequence at s[0..n) (shortest form, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t valid_utf8(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0) {
        len = 2;
        cp = c & 0x1f;
    } else if (c < 0xf0) {
        len = 3;
        cp = c & 0x0f;
    } else if (c < 0xf5) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Copies s[0..n) to j->scratch with each byte that is not valid UTF-8 made
 * '?' (jansson refuses a line that has one). */
static const char *utf8_mended(wv_json *j, const char *s, size_t n)
{
    if (scratch_room(j, n + 1) < 0)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : valid_utf8((const unsigned char *)s + i, n - i);
        if (len == 0) {
            j->scratch[i++] = '?';
        } else {
            memcpy(j->scratch + i, s + i, len);
            i += len;
        }
    }
    return j->scratch;
}

/* jansson's reason, in the viewer's words where they differ, with the
 * control characters of the text it quotes made '?'. */
static void put_reason(const json_error_t *e, char *err, size_t errlen)
{
    const char *why = e->text;
    if (json_error_code(e) == json_error_premature_end_of_input)
        why = "truncated object";
    else if (json_error_code(e) == json_error_end_of_input_expected)
        why = "text after the object";
    snprintf(err, errlen, "%s at column %d", why, e->column);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* Rewrites the strings that hold NULs (from \u0000) into j->scratch with
 * U+FFFD for each. */
static int replace_nuls(wv_json *j)
{
    size_t need = 0;
    for (size_t k = 0; k < j->nfields; k++) {
        const wv_jfield *f = &j->fields[k];
        if (f->type == WV_JSTR && strlen(f->str) != f->len)
            for (size_t i = 0; i <= f->len; i++)
                need += f->str[i] == '\0' ? 3 : 1;
    }
    if (scratch_room(j, need) < 0)
        return -1;
    char *out = j->scratch;
    for (size_t k = 0; k < j->nfields; k++) {
        wv_jfield *f = &j->fields[k];
        if (f->type != WV_JSTR || strlen(f->str) == f->len)
            continue;
        char *start = out;
        for (size_t i = 0; i < f->len; i++) {
            if (f->str[i] == '\0') {
                memcpy(out, "\xef\xbf\xbd", 3);
                out += 3;
            } else {
                *out++ = f->str[i];
            }
        }
        *out = '\0';
        f->str = start;
        f->len = (size_t)(out++ - start);
    }
    return 0;
}

int wv_json_parse(wv_json *j, const char *s, size_t n, char *err, size_t errlen)
{
    json_error_t e;
    j->nfields = 0;
    json_decref(j->root);
    j->root = NULL;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i == n || s[i] != '{') {
        snprintf(err, errlen, "not a JSON object at column %zu", i + 1);
        return -1;
    }
    j->root = json_loadb(s, n, JSON_ALLOW_NUL, &e);
    if (j->root == NULL && json_error_code(&e) == json_error_invalid_utf8) {
        const char *mended = utf8_mended(j, s, n);
        if (mended == NULL) {
            snprintf(err, errlen, "out of memory for a line of %zu bytes", n);
            return -1;
        }
        j->root = json_loadb(mended, n, JSON_ALLOW_NUL, &e);
    }
    if (j->root == NULL) {
        put_reason(&e, err, errlen);
        return -1;
    }
    bool nul = false; /* a string holds \u0000 */
    for (void *it = json_object_iter(j->root); it != NULL;
         it = json_object_iter_next(j->root, it)) {
        json_t *v = json_object_iter_value(it);
        if (wv_grow((void **)&j->fields, &j->fcap, j->nfields, sizeof *j->fields) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        wv_jfield *f = &j->fields[j->nfields++];
        memset(f, 0, sizeof *f);
        f->key = json_object_iter_key(it);
        switch (json_typeof(v)) {
        case JSON_STRING:
            f->type = WV_JSTR;
            f->str = json_string_value(v);
            f->len = json_string_length(v);
            nul = nul || strlen(f->str) != f->len;
            break;
        case JSON_INTEGER:
            f->type = WV_JNUM;
            f->is_int = true;
            f->i = json_integer_value(v);
            f->num = (double)f->i;
            break;
        case JSON_REAL:
            f->type = WV_JNUM;
            f->num = json_real_value(v);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            f->type = WV_JBOOL;
            f->b = json_is_true(v);
            break;
        case JSON_NULL:
            f->type = WV_JNULL;
            break;
        default:
            snprintf(err, errlen, "nested value (the format is flat)");
            return -1;
        }
    }
    if (nul && replace_nuls(j) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const wv_jfield *wv_json_get(const wv_json *j, const char *key)
{
    for (size_t k = j->nfields; k-- > 0;)
        if (strcmp(j->fields[k].key, key) == 0)
            return &j->fields[k];
    return NULL;
}

void wv_json_free(wv_json *j)
{
    json_decref(j->root);
    free(j->scratch);
    free(j->fields);
    *j = (wv_json){0};
}
