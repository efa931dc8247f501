#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "text.h"

struct cursor {
    const char *s;
    size_t n, i;
    char *out; /* where the next decoded string goes, in scratch */
    char *err;
    size_t errlen;
};

static int fail_at(struct cursor *c, const char *what)
{
    snprintf(c->err, c->errlen, "%s at column %zu", what, c->i + 1);
    return -1;
}

static void skip_ws(struct cursor *c)
{
    while (c->i < c->n &&
           (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\r' || c->s[c->i] == '\n'))
        c->i++;
}

static int hex4(struct cursor *c, unsigned *out)
{
    if (c->n - c->i < 4)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char h = c->s[c->i + k];
        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            v |= (unsigned)(h - 'A' + 10);
        else
            return -1;
    }
    c->i += 4;
    *out = v;
    return 0;
}

static void put_utf8(struct cursor *c, unsigned cp)
{
    if (cp < 0x80) {
        *c->out++ = (char)cp;
    } else if (cp < 0x800) {
        *c->out++ = (char)(0xc0 | cp >> 6);
        *c->out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *c->out++ = (char)(0xe0 | cp >> 12);
        *c->out++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *c->out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *c->out++ = (char)(0xf0 | cp >> 18);
        *c->out++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *c->out++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *c->out++ = (char)(0x80 | (cp & 0x3f));
    }
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

/* Decodes the string at c->i (at its opening quote) into c->out, which
 * never needs more bytes than the source: an escape is at least as long as
 * what it decodes to, and an invalid byte becomes one '?'. */
static int parse_string(struct cursor *c, const char **str, size_t *len)
{
    c->i++; /* the quote */
    char *start = c->out;
    for (;;) {
        if (c->i >= c->n)
            return fail_at(c, "unterminated string");
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch == '"') {
            c->i++;
            break;
        }
        if (ch < 0x20)
            return fail_at(c, "control character in string");
        if (ch == '\\') {
            if (c->i + 1 >= c->n)
                return fail_at(c, "unterminated string");
            char e = c->s[c->i + 1];
            c->i += 2;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                *c->out++ = e;
                break;
            case 'b':
                *c->out++ = '\b';
                break;
            case 'f':
                *c->out++ = '\f';
                break;
            case 'n':
                *c->out++ = '\n';
                break;
            case 'r':
                *c->out++ = '\r';
                break;
            case 't':
                *c->out++ = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (hex4(c, &cp) < 0)
                    return fail_at(c, "bad \\u escape");
                if (cp >= 0xd800 && cp < 0xdc00 && c->n - c->i >= 6 && c->s[c->i] == '\\' &&
                    c->s[c->i + 1] == 'u') {
                    size_t save = c->i;
                    c->i += 2;
                    if (hex4(c, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    else
                        c->i = save; /* not a pair: the next escape stands alone */
                }
                if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
                    cp = 0xfffd;
                put_utf8(c, cp);
                break;
            }
            default:
                return fail_at(c, "bad escape");
            }
            continue;
        }
        if (ch < 0x80) {
            *c->out++ = (char)ch;
            c->i++;
            continue;
        }
        size_t ulen = valid_utf8((const unsigned char *)c->s + c->i, c->n - c->i);
        if (ulen == 0) {
            *c->out++ = '?';
            c->i++;
        } else {
            memcpy(c->out, c->s + c->i, ulen);
            c->out += ulen;
            c->i += ulen;
        }
    }
    *len = (size_t)(c->out - start);
    *c->out++ = '\0';
    *str = start;
    return 0;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int parse_number(struct cursor *c, wv_jfield *f)
{
    size_t start = c->i;
    bool neg = false, plain = true;
    if (c->i < c->n && c->s[c->i] == '-') {
        neg = true;
        c->i++;
    }
    if (c->i >= c->n || !is_digit(c->s[c->i]))
        return fail_at(c, "bad number");
    if (c->s[c->i] == '0')
        c->i++;
    else
        while (c->i < c->n && is_digit(c->s[c->i]))
            c->i++;
    if (c->i < c->n && c->s[c->i] == '.') {
        plain = false;
        c->i++;
        if (c->i >= c->n || !is_digit(c->s[c->i]))
            return fail_at(c, "bad number");
        while (c->i < c->n && is_digit(c->s[c->i]))
            c->i++;
    }
    if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        plain = false;
        c->i++;
        if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            c->i++;
        if (c->i >= c->n || !is_digit(c->s[c->i]))
            return fail_at(c, "bad number");
        while (c->i < c->n && is_digit(c->s[c->i]))
            c->i++;
    }
    /* strtod needs a terminated copy: the line may go on with anything. */
    char tmp[64];
    size_t len = c->i - start;
    f->type = WV_JNUM;
    f->is_int = false;
    if (len < sizeof tmp) {
        memcpy(tmp, c->s + start, len);
        tmp[len] = '\0';
        f->num = strtod(tmp, NULL);
    } else {
        f->num = neg ? -HUGE_VAL : HUGE_VAL; /* 64 digits: out of any range we use */
    }
    if (plain) {
        uint64_t v = 0;
        bool over = false;
        for (size_t k = start + (neg ? 1 : 0); k < c->i; k++) {
            unsigned d = (unsigned)(c->s[k] - '0');
            if (v > (UINT64_MAX - d) / 10)
                over = true;
            else
                v = v * 10 + d;
        }
        if (!over && v <= (uint64_t)INT64_MAX) {
            f->is_int = true;
            f->i = neg ? -(int64_t)v : (int64_t)v;
        }
    }
    return 0;
}

static int parse_literal(struct cursor *c, const char *word)
{
    size_t len = strlen(word);
    if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0)
        return fail_at(c, "unexpected character");
    c->i += len;
    return 0;
}

static wv_jfield *add_field(wv_json *j)
{
    if (wv_grow((void **)&j->fields, &j->fcap, j->nfields, sizeof *j->fields) < 0)
        return NULL;
    wv_jfield *f = &j->fields[j->nfields++];
    memset(f, 0, sizeof *f);
    return f;
}

static int parse_value(struct cursor *c, wv_jfield *f)
{
    if (c->i >= c->n)
        return fail_at(c, "missing value");
    switch (c->s[c->i]) {
    case '"':
        f->type = WV_JSTR;
        return parse_string(c, &f->str, &f->len);
    case 't':
        f->type = WV_JBOOL;
        f->b = true;
        return parse_literal(c, "true");
    case 'f':
        f->type = WV_JBOOL;
        f->b = false;
        return parse_literal(c, "false");
    case 'n':
        f->type = WV_JNULL;
        return parse_literal(c, "null");
    case '{':
    case '[':
        return fail_at(c, "nested value (the format is flat)");
    default:
        return parse_number(c, f);
    }
}

int wv_json_parse(wv_json *j, const char *s, size_t n, char *err, size_t errlen)
{
    struct cursor c = {.s = s, .n = n, .err = err, .errlen = errlen};
    j->nfields = 0;
    if (n + 1 > j->scap) {
        char *p = realloc(j->scratch, n + 1);
        if (p == NULL) {
            snprintf(err, errlen, "out of memory for a line of %zu bytes", n);
            return -1;
        }
        j->scratch = p;
        j->scap = n + 1;
    }
    c.out = j->scratch;
    skip_ws(&c);
    if (c.i >= n || s[c.i] != '{')
        return fail_at(&c, "not a JSON object");
    c.i++;
    skip_ws(&c);
    if (c.i < n && s[c.i] == '}') {
        c.i++;
    } else {
        for (;;) {
            skip_ws(&c);
            if (c.i >= n || s[c.i] != '"')
                return fail_at(&c, c.i >= n ? "truncated object" : "expected a key");
            wv_jfield *f = add_field(j);
            if (f == NULL)
                return fail_at(&c, "out of memory");
            size_t klen;
            if (parse_string(&c, &f->key, &klen) < 0)
                return -1;
            skip_ws(&c);
            if (c.i >= n || s[c.i] != ':')
                return fail_at(&c, c.i >= n ? "truncated object" : "expected ':'");
            c.i++;
            skip_ws(&c);
            if (parse_value(&c, f) < 0)
                return -1;
            skip_ws(&c);
            if (c.i < n && s[c.i] == ',') {
                c.i++;
                continue;
            }
            if (c.i < n && s[c.i] == '}') {
                c.i++;
                break;
            }
            return fail_at(&c, c.i >= n ? "truncated object" : "expected ',' or '}'");
        }
    }
    skip_ws(&c);
    if (c.i < n)
        return fail_at(&c, "text after the object");
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
    free(j->scratch);
    free(j->fields);
    *j = (wv_json){0};
}
