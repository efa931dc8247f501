#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "event.h"
#include "text.h"

static const char *const kind_names[WV_KIND_COUNT] = {
    [WV_CONFIG] = "config",
    [WV_ACTOR] = "actor",
    [WV_STOP] = "stop",
    [WV_SEND] = "send",
    [WV_RECV] = "recv",
    [WV_START] = "start",
    [WV_END] = "end",
    [WV_OFFLOAD_START] = "offload_start",
    [WV_OFFLOAD_END] = "offload_end",
    [WV_REPLY] = "reply",
    [WV_FAIL] = "fail",
    [WV_FIRED] = "fired",
    [WV_TIMEOUT] = "timeout",
    [WV_NODE_UP] = "node_up",
    [WV_NODE_DOWN] = "node_down",
    [WV_LOST] = "lost",
};

const char *wv_kind_name(wv_kind k)
{
    return k < WV_KIND_COUNT ? kind_names[k] : "?";
}

/* How each field of the format is read. Fields not listed are ignored, so
 * a newer runtime's extra fields do not make lines malformed. */
enum ftype {
    F_STR,   /* string */
    F_INT,   /* integer number */
    F_BOOL,  /* true or false */
    F_TRACE, /* string of up to 32 hex digits */
    F_SPAN,  /* string of up to 16 hex digits */
    F_ID,    /* string or integer: an identifier we only show */
    F_NUM,   /* any number */
    F_NODE,  /* string, interned */
};

static const struct field {
    const char *name;
    enum ftype type;
    size_t off;
} fields[] = {
    {"node", F_NODE, offsetof(wv_event, node)},
    {"seq", F_INT, offsetof(wv_event, seq)},
    {"t_ns", F_INT, offsetof(wv_event, t_ns)},
    {"wall_us", F_INT, offsetof(wv_event, wall_us)},
    {"trace", F_TRACE, offsetof(wv_event, trace)},
    {"span", F_SPAN, offsetof(wv_event, span)},
    {"parent", F_SPAN, offsetof(wv_event, parent)},
    {"actor", F_STR, offsetof(wv_event, actor)},
    {"to", F_STR, offsetof(wv_event, to)},
    {"from", F_STR, offsetof(wv_event, from)},
    {"msg", F_STR, offsetof(wv_event, msg)},
    {"type", F_INT, offsetof(wv_event, type)},
    {"handler", F_STR, offsetof(wv_event, handler)},
    {"corr", F_ID, offsetof(wv_event, corr)},
    {"size", F_INT, offsetof(wv_event, size)},
    {"depth", F_INT, offsetof(wv_event, depth)},
    {"preview", F_STR, offsetof(wv_event, preview)},
    {"ok", F_BOOL, offsetof(wv_event, ok)},
    {"outcome", F_STR, offsetof(wv_event, outcome)},
    {"code", F_STR, offsetof(wv_event, code)},
    {"message", F_STR, offsetof(wv_event, message)},
    {"failure", F_STR, offsetof(wv_event, failure)},
    {"peer", F_STR, offsetof(wv_event, peer)},
    {"why", F_STR, offsetof(wv_event, why)},
    {"label", F_STR, offsetof(wv_event, label)},
    {"pool", F_BOOL, offsetof(wv_event, pool)},
    {"behaviour", F_STR, offsetof(wv_event, behaviour)},
    {"pid", F_ID, offsetof(wv_event, pid)},
    {"count", F_INT, offsetof(wv_event, count)},
    {"sample", F_NUM, offsetof(wv_event, sample)},
    {"actors", F_STR, offsetof(wv_event, cfg_actors)},
    {"types", F_STR, offsetof(wv_event, cfg_types)},
};

void wv_store_init(wv_store *s, FILE *err)
{
    *s = (wv_store){.err = err};
}

void wv_store_free(wv_store *s)
{
    wf__tf_decoder_free(&s->tf);
    wv_arena_free(&s->arena);
    free(s->events);
    free(s->nodes);
    wv_json_free(&s->json);
    free(s->linebuf);
    *s = (wv_store){0};
}

const char *wv_store_intern(wv_store *s, const char *str)
{
    return wv_arena_strndup(&s->arena, str, strlen(str));
}

static const char *intern_node(wv_store *s, const char *name)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (strcmp(s->nodes[i], name) == 0)
            return s->nodes[i];
    if (wv_grow((void **)&s->nodes, &s->nodecap, s->nnodes, sizeof *s->nodes) < 0)
        return NULL;
    const char *copy = wv_store_intern(s, name);
    if (copy != NULL)
        s->nodes[s->nnodes++] = copy;
    return copy;
}

static void report(wv_store *s, const char *src, unsigned long line, const char *why)
{
    if (s->err == NULL)
        return;
    if (src != s->cur_src) {
        s->cur_src = src;
        s->cur_reports = 0;
    }
    unsigned max = s->max_reports ? s->max_reports : 20;
    if (s->cur_reports < max)
        fprintf(s->err, "%s:%lu: skipped: %s\n", src, line, why);
    else if (s->cur_reports == max)
        fprintf(s->err, "%s: more malformed lines, not reported (the count says how many)\n", src);
    s->cur_reports++;
}

static int parse_hex(const char *str, size_t len, size_t max, uint64_t *out)
{
    if (len == 0 || len > max)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char h = str[i];
        unsigned d;
        if (h >= '0' && h <= '9')
            d = (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            d = (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            d = (unsigned)(h - 'A' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Copies a string into the arena, cut at WV_MAX_STRING on a character. */
static const char *keep_string(wv_store *s, const char *str, size_t len)
{
    static const char mark[] = "…[cut]";
    if (len <= WV_MAX_STRING)
        return wv_arena_strndup(&s->arena, str, len);
    size_t cut = WV_MAX_STRING;
    while (cut > 0 && ((unsigned char)str[cut] & 0xc0) == 0x80)
        cut--;
    char *p = wv_arena_alloc(&s->arena, cut + sizeof mark);
    if (p != NULL) {
        memcpy(p, str, cut);
        memcpy(p + cut, mark, sizeof mark);
    }
    return p;
}

/* Fills e from f as field d describes. Returns 0, -1 for a wrong type or
 * value (reason in why), -2 when out of memory. */
static int set_field(wv_store *s, wv_event *e, const struct field *d, const wv_jfield *f, char *why,
                     size_t whylen)
{
    char *base = (char *)e;
    if (f->type == WV_JNULL)
        return 0; /* null: as if absent */
    switch (d->type) {
    case F_STR: {
        if (f->type != WV_JSTR)
            goto wrong_type;
        const char *v = keep_string(s, f->str, f->len);
        if (v == NULL)
            return -2;
        memcpy(base + d->off, &v, sizeof v);
        return 0;
    }
    case F_INT:
        if (f->type != WV_JNUM)
            goto wrong_type;
        if (f->is_int) {
            memcpy(base + d->off, &f->i, sizeof f->i);
        } else if (f->num == floor(f->num) && fabs(f->num) < 9.2e18) {
            int64_t v = (int64_t)f->num; /* 1e3: an integer all the same */
            memcpy(base + d->off, &v, sizeof v);
        } else {
            snprintf(why, whylen, "\"%s\" is not an integer", d->name);
            return -1;
        }
        return 0;
    case F_NUM:
        if (f->type != WV_JNUM)
            goto wrong_type;
        memcpy(base + d->off, &f->num, sizeof f->num);
        return 0;
    case F_BOOL:
        if (f->type != WV_JBOOL)
            goto wrong_type;
        if (d->off == offsetof(wv_event, ok))
            e->ok = f->b ? 1 : 0;
        else
            e->pool = f->b;
        return 0;
    case F_SPAN: {
        uint64_t v;
        if (f->type != WV_JSTR)
            goto wrong_type;
        if (f->len == 0)
            return 0; /* "": no parent */
        if (parse_hex(f->str, f->len, 16, &v) < 0) {
            snprintf(why, whylen, "\"%s\" is not up to 16 hex digits", d->name);
            return -1;
        }
        memcpy(base + d->off, &v, sizeof v);
        return 0;
    }
    case F_TRACE: {
        if (f->type != WV_JSTR)
            goto wrong_type;
        if (f->len == 0)
            return 0;
        bool hex = f->len <= 32;
        for (size_t i = 0; hex && i < f->len; i++)
            hex = strchr("0123456789abcdefABCDEF", f->str[i]) != NULL;
        if (!hex) {
            snprintf(why, whylen, "\"trace\" is not up to 32 hex digits");
            return -1;
        }
        char *v = wv_arena_strndup(&s->arena, f->str, f->len);
        if (v == NULL)
            return -2;
        for (char *c = v; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
        e->trace = v;
        return 0;
    }
    case F_NODE: {
        if (f->type != WV_JSTR)
            goto wrong_type;
        if (f->len == 0 || strlen(f->str) != f->len) {
            snprintf(why, whylen, "\"node\" is empty or holds a NUL");
            return -1;
        }
        if ((e->node = intern_node(s, f->str)) == NULL)
            return -2;
        return 0;
    }
    case F_ID: {
        char num[32];
        const char *v;
        if (f->type == WV_JSTR) {
            v = keep_string(s, f->str, f->len);
        } else if (f->type == WV_JNUM && f->is_int) {
            snprintf(num, sizeof num, "%lld", (long long)f->i);
            v = wv_store_intern(s, num);
        } else {
            goto wrong_type;
        }
        if (v == NULL)
            return -2;
        memcpy(base + d->off, &v, sizeof v);
        return 0;
    }
    }
wrong_type:
    snprintf(why, whylen, "\"%s\" has the wrong type", d->name);
    return -1;
}

static int push_event(wv_store *s, wv_event *e)
{
    if (wv_grow((void **)&s->events, &s->cap, s->n, sizeof *s->events) < 0)
        return -1;
    s->events[s->n++] = e;
    return 0;
}

int wv_store_add_line(wv_store *s, const char *src, unsigned long line, const char *text,
                      size_t len)
{
    char why[160];
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (i == len)
        return 0; /* blank lines are not events, nor errors */
    s->lines++;
    if (s->jsonl != NULL) { /* converting: no store */
        fwrite(text, 1, len, s->jsonl);
        fputc('\n', s->jsonl);
        return 1;
    }
    if (wv_json_parse(&s->json, text, len, why, sizeof why) < 0)
        goto skip;
    const wv_jfield *ev = wv_json_get(&s->json, "ev");
    if (ev == NULL || ev->type != WV_JSTR) {
        snprintf(why, sizeof why, ev ? "\"ev\" has the wrong type" : "no \"ev\"");
        goto skip;
    }
    int kind = -1;
    for (int k = 0; k < WV_KIND_COUNT; k++)
        if (strcmp(ev->str, kind_names[k]) == 0)
            kind = k;
    if (kind < 0) {
        snprintf(why, sizeof why, "unknown event kind \"%.40s\"", ev->str);
        goto skip;
    }
    wv_event *e = wv_arena_alloc(&s->arena, sizeof *e);
    if (e == NULL)
        return -1;
    e->kind = (wv_kind)kind;
    e->seq = e->t_ns = e->wall_us = WV_NONE;
    e->type = e->size = e->depth = e->count = WV_NONE;
    e->ok = -1;
    e->sample = NAN;
    e->src = src;
    e->line = line;
    e->lane = -1;
    e->msg_idx = -1;
    e->trace_idx = -1;
    e->run_idx = -1;
    for (size_t k = 0; k < s->json.nfields; k++) {
        const wv_jfield *f = &s->json.fields[k];
        for (size_t d = 0; d < sizeof fields / sizeof fields[0]; d++) {
            if (strcmp(f->key, fields[d].name) != 0)
                continue;
            int rc = set_field(s, e, &fields[d], f, why, sizeof why);
            if (rc == -2)
                return -1;
            if (rc < 0)
                goto skip;
            break;
        }
    }
    const char *missing = e->node == NULL || e->node[0] == '\0' ? "node"
                          : e->seq == WV_NONE                   ? "seq"
                          : e->t_ns == WV_NONE                  ? "t_ns"
                          : e->wall_us == WV_NONE               ? "wall_us"
                                                                : NULL;
    if (missing != NULL) {
        snprintf(why, sizeof why, "no \"%s\"", missing);
        goto skip;
    }
    if (push_event(s, e) < 0)
        return -1;
    return 1;
skip:
    s->skipped++;
    report(s, src, line, why);
    return 0;
}

static void chunk_line(void *arg, const char *text, size_t len)
{
    wv_store *s = arg;
    if (s->tf_rc >= 0 && wv_store_add_line(s, s->tf_src, ++*s->tf_line, text, len) < 0)
        s->tf_rc = -1;
}

static void report_chunk(wv_store *s, const char *src, size_t off, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "bytes from %zu: %s", off, why);
    s->bad_chunks++;
    report(s, src, 0, msg);
}

long wv_store_add_chunks(wv_store *s, const char *src, unsigned long *line, const void *buf,
                         size_t len, bool at_end)
{
    const uint8_t *b = buf;
    size_t off = 0;
    s->tf.line = chunk_line;
    s->tf.arg = s;
    s->tf_src = src;
    s->tf_line = line;
    s->tf_rc = 0;
    while (off < len) {
        wf_tf_chunk c;
        size_t need;
        char why[160];
        long n = wf__tf_chunk_parse(b + off, len - off, &c, &need, why, sizeof why);
        if (n > 0) {
            unsigned long bad = s->tf.bad_records;
            if (wf__tf_decode_chunk(&s->tf, &c) < 0 || s->tf_rc < 0)
                return -1;
            if (s->tf.bad_records > bad) {
                snprintf(why, sizeof why, "%lu malformed record(s) skipped",
                         s->tf.bad_records - bad);
                s->skipped += s->tf.bad_records - bad;
                report(s, src, *line, why);
            }
            off += (size_t)n;
            continue;
        }
        if (n == 0 && !at_end)
            break; /* the rest of the chunk is still to come */
        if (n == 0)
            snprintf(why, sizeof why, "a chunk cut short (%zu of %zu bytes)", len - off, need);
        report_chunk(s, src, off, why);
        /* Resynchronise at the next chunk's magic. */
        const uint8_t *next = memmem(b + off + 1, len - off - 1, "WFTR", 4);
        if (next != NULL)
            off = (size_t)(next - b);
        else
            off = at_end || len - off < 4 ? len : len - 3;
    }
    return (long)off;
}

/* A binary trace file: chunks read in blocks, each decoded when whole. */
static int load_chunks(wv_store *s, FILE *f, const char *src)
{
    size_t cap = 1 << 20, have = 0;
    unsigned long line = 0;
    uint8_t *buf = malloc(cap);
    int rc = -1;
    if (buf == NULL)
        goto oom;
    for (;;) {
        if (have == cap) {
            if (cap >= 2 * (size_t)WF_TF_MAX_CHUNK) {
                /* Cannot be: chunks are at most WF_TF_MAX_CHUNK; parse skipped. */
                have = 0;
            } else {
                uint8_t *nb = realloc(buf, cap * 2);
                if (nb == NULL)
                    goto oom;
                buf = nb;
                cap *= 2;
            }
        }
        size_t got = fread(buf + have, 1, cap - have, f);
        have += got;
        bool end = got == 0;
        long used = wv_store_add_chunks(s, src, &line, buf, have, end);
        if (used < 0)
            goto oom;
        memmove(buf, buf + used, have - (size_t)used);
        have -= (size_t)used;
        if (end)
            break;
    }
    if (ferror(f) && s->err)
        fprintf(s->err, "%s: read error after event %lu\n", src, line);
    rc = 0;
    free(buf);
    return rc;
oom:
    if (s->err)
        fprintf(s->err, "%s: out of memory\n", src);
    free(buf);
    return -1;
}

static int load_stream(wv_store *s, FILE *f, const char *src)
{
    int c = getc(f);
    if (c == 'W') { /* a binary trace starts "WFTR"; a JSON line with '{' */
        ungetc(c, f);
        return load_chunks(s, f, src);
    }
    if (c != EOF)
        ungetc(c, f);

    unsigned long line = 0;
    ssize_t n;
    while ((n = getline(&s->linebuf, &s->linecap, f)) >= 0) {
        line++;
        size_t len = (size_t)n;
        if (len > 0 && s->linebuf[len - 1] == '\n')
            len--;
        if (wv_store_add_line(s, src, line, s->linebuf, len) < 0) {
            if (s->err)
                fprintf(s->err, "%s:%lu: out of memory\n", src, line);
            return -1;
        }
    }
    if (ferror(f) && s->err)
        fprintf(s->err, "%s: read error after line %lu\n", src, line);
    return 0;
}

static int load_file(wv_store *s, const char *path)
{
    const char *src = wv_store_intern(s, path);
    if (src == NULL)
        return -1;
    if (strcmp(path, "-") == 0) {
        s->files++;
        return load_stream(s, stdin, "(stdin)");
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (s->err)
            fprintf(s->err, "weft-view: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    s->files++;
    int rc = load_stream(s, f, src);
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir(wv_store *s, const char *path)
{
    DIR *d = opendir(path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1, loaded = 0;
    if (d == NULL) {
        if (s->err)
            fprintf(s->err, "weft-view: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if ((len <= 6 || strcmp(de->d_name + len - 6, ".jsonl") != 0) &&
            (len <= 5 || strcmp(de->d_name + len - 5, ".wftr") != 0))
            continue;
        if (wv_grow((void **)&names, &cap, n, sizeof *names) < 0)
            goto fail;
        size_t plen = strlen(path) + 1 + len + 1;
        if ((names[n] = malloc(plen)) == NULL)
            goto fail;
        snprintf(names[n++], plen, "%s/%s", path, de->d_name);
    }
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++)
        if (load_file(s, names[i]) == 0)
            loaded++;
    if (n == 0 && s->err)
        fprintf(s->err, "weft-view: no *.wftr or *.jsonl files in %s\n", path);
    rc = loaded > 0 ? 0 : -1;
fail:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int wv_store_load(wv_store *s, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return load_dir(s, path);
    return load_file(s, path);
}
