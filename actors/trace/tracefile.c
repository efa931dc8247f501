/* The binary trace format (tracefile.h): checking chunks, decoding their
 * records, and turning them into the JSON lines of weft/trace.h. The
 * bytes may come from anywhere (a file, a stream, a fuzzer): every length
 * and offset is checked against the chunk before it is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "tracefile.h"

/* ---- little-endian fields ---- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- chunks ---- */

bool wf__tf_is_binary(const void *p, size_t len)
{
    return len >= 4 && memcmp(p, "WFTR", 4) == 0;
}

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)

long wf__tf_chunk_parse(const void *p, size_t len, wf_tf_chunk *c, size_t *need, char *err,
                        size_t errlen)
{
    const uint8_t *b = p;
    *need = WF_TF_HEAD;
    if (len < 4 && memcmp(b, "WFTR", len) == 0)
        return 0;
    if (!wf__tf_is_binary(b, len))
        return FAIL("no chunk here (it does not start with WFTR)");
    if (len < WF_TF_HEAD)
        return 0;
    memset(c, 0, sizeof *c);
    c->base = b;
    c->version = get16(b + 4);
    c->head_size = get16(b + 6);
    c->size = get32(b + 8);
    c->nrecs = get32(b + 12);
    c->rec_size = get16(b + 16);
    c->node_len = get16(b + 18);
    c->nnames = get32(b + 20);
    c->strings_size = get32(b + 24);
    c->seq = get64(b + 32);
    c->wall_off_ns = (int64_t)get64(b + 40);
    c->lost = get64(b + 48);
    c->t_made = get64(b + 56);
    if (c->version != WF_TF_VERSION)
        return FAIL("chunk version %u (this reader knows %u)", c->version, WF_TF_VERSION);
    if (c->head_size < WF_TF_HEAD || c->rec_size < WF_TF_REC)
        return FAIL("chunk header %u or record %u bytes: too short", c->head_size, c->rec_size);
    if (c->size > WF_TF_MAX_CHUNK)
        return FAIL("chunk of %u bytes: more than %u", c->size, WF_TF_MAX_CHUNK);
    /* Every part within the size, in 64 bits: no sum can wrap. */
    uint64_t want = (uint64_t)c->head_size + c->node_len + (uint64_t)c->nnames * WF_TF_NAME +
                    c->strings_size + (uint64_t)c->nrecs * c->rec_size;
    if (want != c->size)
        return FAIL("chunk of %u bytes whose parts add up to %llu", c->size,
                    (unsigned long long)want);
    if (c->node_len == 0)
        return FAIL("chunk without a node name");
    *need = c->size;
    if (len < c->size)
        return 0;
    c->node = (const char *)b + c->head_size;
    c->names = b + c->head_size + c->node_len;
    c->strings = c->names + (size_t)c->nnames * WF_TF_NAME;
    c->recs = c->strings + c->strings_size;
    for (uint32_t i = 0; i < c->nnames; i++) {
        const uint8_t *n = c->names + (size_t)i * WF_TF_NAME;
        const char *s;
        size_t sl;
        if (n[0] < WF_TF_LABEL || n[0] > WF_TF_RNAME)
            return FAIL("name %u: unknown kind %u", i, n[0]);
        if (wf__tf_string(c, get32(n + 4), &s, &sl) != 0)
            return FAIL("name %u: its string is out of range", i);
    }
    return (long)c->size;
}

int wf__tf_string(const wf_tf_chunk *c, uint32_t ref, const char **s, size_t *len)
{
    if (ref == 0 || (uint64_t)ref - 1 + 4 > c->strings_size)
        return -1;
    uint32_t off = ref - 1, n = get32(c->strings + off);
    if ((uint64_t)off + 4 + n > c->strings_size)
        return -1;
    *s = (const char *)c->strings + off + 4;
    *len = n;
    return 0;
}

int wf__tf_rec_get(const wf_tf_chunk *c, uint32_t i, wf_tf_rec *r)
{
    const uint8_t *p = c->recs + (size_t)i * c->rec_size;
    r->t = get64(p);
    r->corr = get64(p + 8);
    r->actor = get64(p + 16);
    r->other = get64(p + 24);
    memcpy(r->trace_id, p + 32, 16);
    r->span = get64(p + 48);
    r->parent = get64(p + 56);
    r->type = get32(p + 64);
    r->size = get32(p + 68);
    r->depth = get32(p + 72);
    uint32_t extra = get32(p + 76);
    r->peer = get16(p + 80);
    r->kind = p[82];
    r->msg = p[83];
    r->outcome = p[84];
    r->flags = p[85];
    r->pool = p[86];
    r->nsmall = p[87];
    memcpy(r->small, p + 88, WF_TF_SMALL);
    r->extra = NULL;
    r->extra_len = 0;
    if (extra != 0 && wf__tf_string(c, extra, &r->extra, &r->extra_len) != 0)
        return -1;
    if (r->kind >= WF_TF_KINDS || r->kind == WF_TF_PEER_ || r->kind == WF_TF_RNAME_ ||
        r->nsmall > WF_TF_SMALL)
        return -1;
    return 0;
}

void wf__tf_put_head(uint8_t *o, const wf_tf_chunk *c)
{
    memcpy(o, "WFTR", 4);
    put16(o + 4, WF_TF_VERSION);
    put16(o + 6, WF_TF_HEAD);
    put32(o + 8, c->size);
    put32(o + 12, c->nrecs);
    put16(o + 16, WF_TF_REC);
    put16(o + 18, c->node_len);
    put32(o + 20, c->nnames);
    put32(o + 24, c->strings_size);
    put32(o + 28, 0);
    put64(o + 32, c->seq);
    put64(o + 40, (uint64_t)c->wall_off_ns);
    put64(o + 48, c->lost);
    put64(o + 56, c->t_made);
}

void wf__tf_put_rec(uint8_t *o, const wf_tf_rec *r, uint32_t extra_ref)
{
    put64(o, r->t);
    put64(o + 8, r->corr);
    put64(o + 16, r->actor);
    put64(o + 24, r->other);
    memcpy(o + 32, r->trace_id, 16);
    put64(o + 48, r->span);
    put64(o + 56, r->parent);
    put32(o + 64, r->type);
    put32(o + 68, r->size);
    put32(o + 72, r->depth);
    put32(o + 76, extra_ref);
    put16(o + 80, r->peer);
    o[82] = r->kind;
    o[83] = r->msg;
    o[84] = r->outcome;
    o[85] = r->flags;
    o[86] = r->pool;
    o[87] = r->nsmall;
    memcpy(o + 88, r->small, WF_TF_SMALL);
}

void wf__tf_put_name(uint8_t *o, int kind, uint64_t id, uint32_t ref)
{
    o[0] = (uint8_t)kind;
    o[1] = o[2] = o[3] = 0;
    put32(o + 4, ref);
    put64(o + 8, id);
}

/* ---- the chunk's names ---- */

#define REF_BITS 28 /* strings areas are under 2^26 bytes: room for a kind */

static uint32_t name_hash(int kind, uint64_t id, uint32_t mask)
{
    return (uint32_t)(((id ^ (uint64_t)kind << 56) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int names_index(wf_tf_decoder *d, const wf_tf_chunk *c)
{
    uint32_t need = 16;
    while (need < c->nnames * 2)
        need <<= 1;
    if (need > d->ncap) {
        uint64_t *ids = realloc(d->ids, need * sizeof *ids);
        if (ids != NULL)
            d->ids = ids;
        uint32_t *refs = realloc(d->refs, need * sizeof *refs);
        if (refs != NULL)
            d->refs = refs;
        if (ids == NULL || refs == NULL)
            return -1;
        d->ncap = need;
    }
    memset(d->refs, 0, d->ncap * sizeof *d->refs);
    uint32_t mask = d->ncap - 1;
    for (uint32_t i = 0; i < c->nnames; i++) {
        const uint8_t *n = c->names + (size_t)i * WF_TF_NAME;
        uint64_t id = get64(n + 8);
        uint32_t h = name_hash(n[0], id, mask);
        while (d->refs[h] != 0 && !(d->ids[h] == id && d->refs[h] >> REF_BITS == n[0]))
            h = (h + 1) & mask;
        d->ids[h] = id;
        d->refs[h] = (uint32_t)n[0] << REF_BITS | get32(n + 4); /* the last one wins */
    }
    return 0;
}

/* The name of (kind, id) in c, or NULL. */
static const char *name_of(const wf_tf_decoder *d, const wf_tf_chunk *c, int kind, uint64_t id,
                           size_t *len)
{
    uint32_t mask = d->ncap - 1, h = name_hash(kind, id, mask);
    for (; d->refs[h] != 0; h = (h + 1) & mask) {
        if (d->ids[h] == id && (int)(d->refs[h] >> REF_BITS) == kind) {
            const char *s;
            if (wf__tf_string(c, d->refs[h] & ((1u << REF_BITS) - 1), &s, len) != 0)
                return NULL;
            return s;
        }
    }
    return NULL;
}

/* ---- JSON text ---- */

/* Room for n more bytes at p in the line; returns p, moved if the buffer
 * moved, or NULL when out of memory. */
static char *room(wf_tf_decoder *d, char *p, size_t n)
{
    size_t used = (size_t)(p - d->buf);
    if (used + n <= d->cap)
        return p;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < used + n)
        cap *= 2;
    char *b = realloc(d->buf, cap);
    if (b == NULL)
        return NULL;
    d->buf = b;
    d->cap = cap;
    return b + used;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/* Escapes s[0..n) (room for 6 bytes per input byte); invalid UTF-8 becomes
 * '?', so every line is valid JSON whatever the file holds. */
static char *escape_to(char *p, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\', *p++ = 'n';
        } else if (c == '\t') {
            *p++ = '\\', *p++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(p, "\\u00", 4);
            p = wf__hex(p + 4, &c, 1);
        } else if (c < 0x80) {
            *p++ = (char)c;
        } else {
            size_t len = utf8_len(u + i, n - i);
            if (len == 0) {
                *p++ = '?';
            } else {
                memcpy(p, u + i, len);
                p += len;
                i += len - 1;
            }
        }
    }
    return p;
}

/* A string's escaped text, with room made; NULL when out of memory. */
static char *put_esc(wf_tf_decoder *d, char *p, const char *s, size_t n)
{
    if ((p = room(d, p, n * 6 + 64)) == NULL)
        return NULL;
    return escape_to(p, s, n);
}

#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/* A short string of ours (a key, a kind's name): no escaping needed. */
static char *put_raw(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Decimal, two digits per step from a table: a line has three long numbers. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324"
                                  "25262728293031323334353637383940414243444546474849"
                                  "50515253545556575859606162636465666768697071727374"
                                  "75767778798081828384858687888990919293949596979899";

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20], *d = tmp + sizeof tmp;
    while (v >= 100) {
        d -= 2;
        memcpy(d, digit_pairs + (v % 100) * 2, 2);
        v /= 100;
    }
    if (v >= 10) {
        d -= 2;
        memcpy(d, digit_pairs + v * 2, 2);
    } else {
        *--d = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - d);
    memcpy(p, d, n);
    return p + n;
}

/* The NUL-separated part i of a record's extra string (empty if absent). */
static const char *part(const wf_tf_rec *r, int i, size_t *len)
{
    const char *s = r->extra;
    if (s == NULL) {
        *len = 0;
        return "";
    }
    const char *end = s + r->extra_len;
    for (; i > 0; i--) {
        const char *z = memchr(s, '\0', (size_t)(end - s));
        if (z == NULL) {
            *len = 0;
            return "";
        }
        s = z + 1;
    }
    const char *z = memchr(s, '\0', (size_t)(end - s));
    *len = (size_t)((z ? z : end) - s);
    return s;
}

/* A local actor's label, or #pid when the chunk names none. */
static char *put_label(wf_tf_decoder *d, const wf_tf_chunk *c, char *p, uint64_t id)
{
    size_t n;
    const char *l = name_of(d, c, WF_TF_LABEL, id, &n);
    if (l != NULL)
        return put_esc(d, p, l, n);
    *p++ = '#';
    return wf__hex64(p, id, 1);
}

#define PID_NAME_BIT ((uint64_t)1 << 47) /* runtime.h's WF__PID_NAME_BIT */

/* "actor@node" for a pid seen from the recording node. */
static char *put_who(wf_tf_decoder *d, const wf_tf_chunk *c, char *p, uint64_t id)
{
    uint16_t peer = (uint16_t)(id >> 48);
    size_t n;
    if (peer == 0) {
        if ((p = put_label(d, c, p, id)) == NULL)
            return NULL;
        *p++ = '@';
        return put_esc(d, p, c->node, c->node_len);
    }
    const char *rn = (id & PID_NAME_BIT) ? name_of(d, c, WF_TF_RNAME, (uint32_t)id, &n) : NULL;
    if (rn != NULL) {
        if ((p = put_esc(d, p, rn, n)) == NULL)
            return NULL;
    } else {
        *p++ = '#';
        p = wf__hex64(p, id & (PID_NAME_BIT - 1), 1);
    }
    *p++ = '@';
    const char *pn = name_of(d, c, WF_TF_PEER, peer, &n);
    return pn ? put_esc(d, p, pn, n) : PUT_LIT(p, "?");
}

static const char *const kind_names[WF_TF_KINDS] = {
    [WF_TF_CONFIG] = "config",
    [WF_TF_ACTOR] = "actor",
    [WF_TF_STOP] = "stop",
    [WF_TF_SEND] = "send",
    [WF_TF_RECV] = "recv",
    [WF_TF_START] = "start",
    [WF_TF_END] = "end",
    [WF_TF_OFFLOAD_START] = "offload_start",
    [WF_TF_OFFLOAD_END] = "offload_end",
    [WF_TF_REPLY] = "reply",
    [WF_TF_FAIL] = "fail",
    [WF_TF_FIRED] = "fired",
    [WF_TF_TIMEOUT] = "timeout",
    [WF_TF_NODE_UP] = "node_up",
    [WF_TF_NODE_DOWN] = "node_down",
    [WF_TF_NOTE_RECV] = "recv",
    [WF_TF_NOTE_REPLY] = "reply",
    [WF_TF_NOTE_FAIL] = "fail",
};

static const char *const outcome_names[] = {
    [WF_TF_OUT_NONE] = "none", [WF_TF_OUT_REPLY] = "reply", [WF_TF_OUT_DEFERRED] = "deferred",
    [WF_TF_OUT_FAIL] = "fail", [WF_TF_OUT_OK] = "ok",
};

static char *put_ok(char *p, bool ok)
{
    return ok ? PUT_LIT(p, ",\"ok\":true") : PUT_LIT(p, ",\"ok\":false");
}

/* {"ev":..,"node":..,"seq":..,"t_ns":..,"wall_us":.. */
static char *put_head(wf_tf_decoder *d, const wf_tf_chunk *c, const char *ev, uint64_t seq,
                      uint64_t t)
{
    char *p = room(d, d->buf, 256);
    if (p == NULL)
        return NULL;
    p = PUT_LIT(p, "{\"ev\":\"");
    p = put_raw(p, ev);
    p = PUT_LIT(p, "\",\"node\":\"");
    if ((p = put_esc(d, p, c->node, c->node_len)) == NULL)
        return NULL;
    p = PUT_LIT(p, "\",\"seq\":");
    p = put_u64(p, seq);
    p = PUT_LIT(p, ",\"t_ns\":");
    p = put_u64(p, t);
    p = PUT_LIT(p, ",\"wall_us\":");
    /* Unsigned: a file's numbers may be anything, and wrap rather than
     * overflow; a node's real ones are positive. */
    return put_u64(p, (t + (uint64_t)c->wall_off_ns) / 1000);
}

/* A string field ,"key":"value" with value escaped. */
static char *put_field(wf_tf_decoder *d, char *p, const char *key, const char *s, size_t n)
{
    if ((p = room(d, p, strlen(key) + 8)) == NULL)
        return NULL;
    *p++ = ',';
    *p++ = '"';
    p = put_raw(p, key);
    p = PUT_LIT(p, "\":\"");
    if ((p = put_esc(d, p, s, n)) == NULL)
        return NULL;
    *p++ = '"';
    return room(d, p, 256); /* for the literals that follow */
}

/* The failure a record's extra carries: code, message, formatted failure. */
static char *put_failure(wf_tf_decoder *d, char *p, const wf_tf_rec *r)
{
    static const char *const keys[] = {"code", "message", "failure"};
    for (int i = 0; i < 3 && p != NULL; i++) {
        size_t n;
        const char *s = part(r, i, &n);
        p = put_field(d, p, keys[i], s, n);
    }
    return p;
}

/* The line of record r, seq-th of the node; NULL when out of memory. */
static char *line(wf_tf_decoder *d, const wf_tf_chunk *c, const wf_tf_rec *r, uint64_t seq)
{
    char *p = put_head(d, c, kind_names[r->kind], seq, r->t);
    if (p == NULL || (p = room(d, p, 512)) == NULL)
        return NULL;
    if (r->flags & 0x80) { /* WF_TRACE_VALID */
        p = PUT_LIT(p, ",\"trace\":\"");
        if (!d->trace_cached || memcmp(d->last_trace, r->trace_id, 16) != 0) {
            d->trace_cached = true;
            memcpy(d->last_trace, r->trace_id, 16);
            wf__hex(d->last_trace_hex, r->trace_id, 16);
        }
        memcpy(p, d->last_trace_hex, 32);
        p += 32;
        p = PUT_LIT(p, "\",\"span\":\"");
        p = wf__hex64(p, r->span, 0);
        *p++ = '"';
        if (r->parent != 0) {
            p = PUT_LIT(p, ",\"parent\":\"");
            p = wf__hex64(p, r->parent, 0);
            *p++ = '"';
        }
    }
    size_t n;
    const char *pn;
    switch (r->kind) {
    case WF_TF_CONFIG:
        break;
    case WF_TF_NODE_UP:
    case WF_TF_NODE_DOWN:
        pn = name_of(d, c, WF_TF_PEER, r->peer, &n);
        p = put_field(d, p, "peer", pn ? pn : "?", pn ? n : 1);
        break;
    case WF_TF_NOTE_RECV:
    case WF_TF_NOTE_REPLY:
    case WF_TF_NOTE_FAIL:
        p = PUT_LIT(p, ",\"actor\":\"");
        if (r->actor != 0 && (p = put_label(d, c, p, r->actor)) == NULL)
            return NULL;
        if ((p = room(d, p, 256)) == NULL)
            return NULL;
        *p++ = '"';
        p = r->kind == WF_TF_NOTE_RECV ? PUT_LIT(p, ",\"from\":\"\"") : PUT_LIT(p, ",\"to\":\"\"");
        p = PUT_LIT(p, ",\"size\":");
        p = put_u64(p, r->size);
        if (r->kind == WF_TF_NOTE_FAIL)
            p = put_ok(p, false);
        if (r->nsmall > 0)
            p = put_field(d, p, "label", r->small, r->nsmall);
        else if (r->extra != NULL)
            p = put_field(d, p, "label", r->extra, r->extra_len);
        break;
    default:
        p = PUT_LIT(p, ",\"actor\":\"");
        if (r->actor != 0 && (p = put_label(d, c, p, r->actor)) == NULL)
            return NULL;
        *p++ = '"';
    }
    if (p == NULL || (p = room(d, p, 512)) == NULL)
        return NULL;
    if (r->kind == WF_TF_ACTOR) {
        p = PUT_LIT(p, ",\"pid\":\"");
        p = wf__hex64(p, r->actor, 1);
        *p++ = '"';
        const char *b = part(r, 1, &n);
        if ((p = put_field(d, p, "behaviour", b, n)) == NULL)
            return NULL;
    }
    bool is_msg = r->msg != WF_TF_MSG_NONE;
    if (is_msg &&
        (r->kind == WF_TF_SEND || r->kind == WF_TF_RECV || r->kind == WF_TF_START ||
         r->kind == WF_TF_END || r->kind == WF_TF_OFFLOAD_START || r->kind == WF_TF_OFFLOAD_END)) {
        p = r->kind == WF_TF_SEND ? PUT_LIT(p, ",\"to\":\"") : PUT_LIT(p, ",\"from\":\"");
        if ((r->kind == WF_TF_SEND || r->other != 0) && (p = put_who(d, c, p, r->other)) == NULL)
            return NULL;
        if ((p = room(d, p, 512)) == NULL)
            return NULL;
        p = r->msg == WF_TF_MSG_ASK ? PUT_LIT(p, "\",\"msg\":\"ask\"")
                                    : PUT_LIT(p, "\",\"msg\":\"tell\"");
    }
    if (r->type != 0) {
        p = PUT_LIT(p, ",\"type\":");
        p = put_u64(p, r->type);
    }
    if (r->corr != 0) {
        p = PUT_LIT(p, ",\"corr\":\"");
        p = wf__hex64(p, r->corr, 1);
        *p++ = '"';
    }
    switch (r->kind) {
    case WF_TF_SEND:
    case WF_TF_RECV:
    case WF_TF_REPLY:
        p = PUT_LIT(p, ",\"size\":");
        p = put_u64(p, r->size);
        if (r->depth != 0) {
            p = PUT_LIT(p, ",\"depth\":");
            p = put_u64(p, r->depth - 1);
        }
        p = PUT_LIT(p, ",\"preview\":\"");
        for (unsigned i = 0; i < r->nsmall; i++) {
            unsigned char ch = (unsigned char)r->small[i];
            if (ch == '"' || ch == '\\')
                *p++ = '\\';
            *p++ = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
        }
        *p++ = '"';
        if (r->kind == WF_TF_REPLY)
            p = put_ok(p, true);
        break;
    case WF_TF_START:
    case WF_TF_END:
    case WF_TF_OFFLOAD_START:
    case WF_TF_OFFLOAD_END:
        if (is_msg)
            p = put_field(d, p, "handler", r->small, r->nsmall);
        else
            p = PUT_LIT(p, ",\"label\":\"defer_to_thread\"");
        if (p == NULL)
            return NULL;
        if (r->pool)
            p = PUT_LIT(p, ",\"pool\":true");
        if (r->kind == WF_TF_END || r->kind == WF_TF_OFFLOAD_END) {
            p = put_ok(p, r->outcome != WF_TF_OUT_FAIL);
            if (is_msg) {
                p = PUT_LIT(p, ",\"outcome\":\"");
                const char *o = r->outcome <= WF_TF_OUT_OK ? outcome_names[r->outcome] : "none";
                p = put_raw(p, o);
                *p++ = '"';
            }
        }
        break;
    case WF_TF_FAIL:
        p = put_ok(p, false);
        if (r->extra != NULL)
            p = put_failure(d, p, r);
        break;
    case WF_TF_STOP:
        p = put_ok(p, r->outcome != WF_TF_OUT_FAIL);
        if (r->extra != NULL)
            p = put_failure(d, p, r);
        break;
    case WF_TF_FIRED:
    case WF_TF_TIMEOUT:
        p = put_ok(p, r->outcome != WF_TF_OUT_FAIL);
        break;
    case WF_TF_NODE_UP:
    case WF_TF_NODE_DOWN:
        if (r->extra != NULL)
            p = put_field(d, p, "why", r->extra, r->extra_len);
        break;
    case WF_TF_CONFIG: {
        const char *s = part(r, 0, &n);
        char num[32];
        size_t k = n < sizeof num - 1 ? n : sizeof num - 1;
        memcpy(num, s, k);
        num[k] = '\0';
        char *end;
        double v = strtod(num, &end);
        p = PUT_LIT(p, ",\"sample\":");
        bool ok = end != num && *end == '\0' && v >= 0 && v <= 1; /* NaN too: no JSON */
        p += snprintf(p, 32, "%g", ok ? v : 1.0);
        s = part(r, 1, &n);
        if ((p = put_field(d, p, "actors", s, n)) == NULL)
            return NULL;
        s = part(r, 2, &n);
        p = put_field(d, p, "types", s, n);
        break;
    }
    default:
        break;
    }
    if (p == NULL || (p = room(d, p, 2)) == NULL)
        return NULL;
    *p++ = '}';
    return p;
}

long wf__tf_decode_chunk(wf_tf_decoder *d, const wf_tf_chunk *c)
{
    if (names_index(d, c) != 0)
        return -1;
    uint64_t seq = c->seq;
    long events = 0;
    char *p;
    if (c->lost > 0) {
        if ((p = put_head(d, c, "lost", seq++, c->t_made)) == NULL || (p = room(d, p, 40)) == NULL)
            return -1;
        p = PUT_LIT(p, ",\"count\":");
        p = put_u64(p, c->lost);
        *p++ = '}';
        d->line(d->arg, d->buf, (size_t)(p - d->buf));
        events++;
    }
    for (uint32_t i = 0; i < c->nrecs; i++, seq++) {
        wf_tf_rec r;
        if (wf__tf_rec_get(c, i, &r) != 0) {
            d->bad_records++;
            continue;
        }
        if ((p = line(d, c, &r, seq)) == NULL)
            return -1;
        d->line(d->arg, d->buf, (size_t)(p - d->buf));
        events++;
    }
    return events;
}

void wf__tf_decoder_free(wf_tf_decoder *d)
{
    free(d->buf);
    free(d->ids);
    free(d->refs);
    d->buf = NULL;
    d->ids = NULL;
    d->refs = NULL;
    d->cap = d->ncap = 0;
}
