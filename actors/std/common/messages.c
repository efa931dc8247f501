/* The standard actors' messages on the wire: one encoding whatever the
 * host's byte order, struct padding or compiler, so that a listener on one
 * machine and a cache or renderer on another understand each other.
 *
 * Every integer is big-endian; a string is a 1- or 2-byte length and its
 * bytes (no NUL, none inside); a message's free-form tail (value, poem,
 * page, trace) is whatever follows its head. Decoding is strict, as for
 * the wire header: a length that runs past the body, a string too long for
 * its field or holding a NUL, a value out of its range, or bytes left over
 * in a fixed-size message make the whole message invalid.
 *
 *   WF_CACHE_GET reply     status u32 (1..4), age_s u32, value...
 *   WF_CACHE_STATS reply   count u16 (1..255), count x u64: the counters in
 *                          wf_cache_stats's order
 *   WF_RENDER_POEM         session u8+(0..32), cache u8+(0..15), age_s u32,
 *                          fault u32 (0..2), poem text...
 *   WF_RENDER_POEM reply   session u8+(0..32), views u32, html...
 *   WF_RENDER_ERROR        status u16 (100..599), id u8+(0..16),
 *                          message u16+(0..255), debug u8 (0, 1), trace...
 *   WF_TRANSFORM           name u8+(1..32, a transform name), wait_ms u32,
 *                          poem...
 *   WF_TRANSFORM_STATS     as WF_CACHE_STATS, wf_transformer_stats's order
 *
 * Counters travel with their number, so that a node with more (or fewer)
 * of them than its peer still reads the ones both know: those missing are
 * read as 0, extra ones are skipped.
 *
 * Hand-written rather than CBOR or MessagePack (both in Debian): these are
 * a few flat records; a general encoder would add a dependency, allocate
 * per message, and leave every one of these checks to be written anyway.
 * Any thread. */
#include <string.h>

#include <weft/cache.h>
#include <weft/renderer.h>
#include <weft/transformer.h>

#include "messages.h"

/* ---- a writer and a reader over one body ---- */

static unsigned char *put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
    return p + 4;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
    return p + 8;
}

/* A string field of at most max bytes: s up to its NUL or max. */
static unsigned char *put_str8(unsigned char *p, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

/* A reader: each get fails (and every later one) once the body runs out
 * or a rule is broken. */
struct rd {
    const unsigned char *p, *end;
    int bad;
};

static uint64_t get(struct rd *r, int bytes)
{
    if (r->bad || r->end - r->p < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | r->p[i];
    r->p += bytes;
    return v;
}

/* A string of lenbytes' length, at most max, into out[0..max] with a NUL. */
static void get_str(struct rd *r, int lenbytes, char *out, size_t max)
{
    size_t n = (size_t)get(r, lenbytes);
    if (r->bad || n > max || (size_t)(r->end - r->p) < n || memchr(r->p, '\0', n) != NULL) {
        r->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
}

static int rd_open(struct rd *r, wf_msg *m, uint32_t type)
{
    if (wf_msg_type(m) != type)
        return WF_EINVAL;
    r->p = wf_msg_body(m);
    r->end = r->p + wf_msg_len(m);
    r->bad = 0;
    return 0;
}

/* The tail after the head, if the head was read whole. */
static int rd_tail(struct rd *r, const void **tail, size_t *len)
{
    if (r->bad)
        return WF_EINVAL;
    *tail = r->p;
    *len = (size_t)(r->end - r->p);
    return 0;
}

/* A head of head_len bytes and a tail copied after it: the message and
 * where its head goes. */
static wf_msg *msg_with_tail(uint32_t type, size_t head_len, const void *tail, size_t len,
                             unsigned char **head)
{
    if (len > 0 && tail == NULL)
        return NULL;
    wf_msg *m = wf_msg_alloc(type, head_len + len);
    if (m == NULL)
        return NULL;
    *head = wf_msg_body(m);
    if (len > 0)
        memcpy(*head + head_len, tail, len);
    return m;
}

/* ---- counters ---- */

/* The stats structs are counters only (uint64_t fields, in order): they
 * travel as such, the struct read and written a counter at a time. */
#define COUNTERS_MAX 255
_Static_assert(sizeof(wf_cache_stats) % 8 == 0 && sizeof(wf_cache_stats) / 8 <= COUNTERS_MAX,
               "counters only");
_Static_assert(sizeof(wf_transformer_stats) % 8 == 0 &&
                   sizeof(wf_transformer_stats) / 8 <= COUNTERS_MAX,
               "counters only");

static wf_msg *counters_new(uint32_t type, const void *stats, size_t size)
{
    size_t n = size / 8;
    wf_msg *m = wf_msg_alloc(type, 2 + 8 * n);
    if (m == NULL)
        return NULL;
    unsigned char *p = put16(wf_msg_body(m), (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, (const unsigned char *)stats + 8 * i, 8);
        p = put64(p, v);
    }
    return m;
}

static int counters_parse(wf_msg *m, uint32_t type, void *stats, size_t size)
{
    struct rd r;
    if (rd_open(&r, m, type) != 0)
        return WF_EINVAL;
    size_t count = (size_t)get(&r, 2);
    if (r.bad || count == 0 || count > COUNTERS_MAX || (size_t)(r.end - r.p) != 8 * count)
        return WF_EINVAL;
    for (size_t i = 0; i < size / 8; i++) {
        uint64_t v = i < count ? get(&r, 8) : 0;
        memcpy((unsigned char *)stats + 8 * i, &v, 8);
    }
    return 0;
}

wf_msg *wf_cache_stats_msg_new(const wf_cache_stats *s)
{
    return counters_new(WF_CACHE_STATS, s, sizeof *s);
}

int wf_cache_stats_parse(wf_msg *m, wf_cache_stats *out)
{
    return counters_parse(m, WF_CACHE_STATS, out, sizeof *out);
}

wf_msg *wf_transformer_stats_msg_new(const wf_transformer_stats *s)
{
    return counters_new(WF_TRANSFORM_STATS, s, sizeof *s);
}

int wf_transformer_stats_parse(wf_msg *m, wf_transformer_stats *out)
{
    return counters_parse(m, WF_TRANSFORM_STATS, out, sizeof *out);
}

/* ---- the cache's reply ---- */

wf_msg *wf_cache_reply_new(const wf_cache_reply *head, const void *value, size_t len)
{
    unsigned char *p;
    if (head->status < WF_CACHE_HIT || head->status > WF_CACHE_STALE)
        return NULL;
    wf_msg *m = msg_with_tail(WF_CACHE_GET, 8, value, len, &p);
    if (m != NULL)
        put32(put32(p, head->status), head->age_s);
    return m;
}

int wf_cache_reply_parse(wf_msg *m, wf_cache_reply *head, const void **value, size_t *len)
{
    struct rd r;
    if (rd_open(&r, m, WF_CACHE_GET) != 0)
        return WF_EINVAL;
    head->status = (uint32_t)get(&r, 4);
    head->age_s = (uint32_t)get(&r, 4);
    if (head->status < WF_CACHE_HIT || head->status > WF_CACHE_STALE)
        return WF_EINVAL;
    return rd_tail(&r, value, len);
}

/* ---- the renderer's messages ---- */

#define SESSION_MAX (sizeof((wf_render_poem *)0)->session - 1)
#define CACHE_MAX   (sizeof((wf_render_poem *)0)->cache - 1)
#define ID_MAX      (sizeof((wf_render_error *)0)->id - 1)
#define MESSAGE_MAX (sizeof((wf_render_error *)0)->message - 1)

wf_msg *wf_render_poem_msg_new(const wf_render_poem *head, const void *text, size_t len)
{
    if (head->fault > WF_RENDER_FAULT_ENCODING)
        return NULL;
    size_t sl = strnlen(head->session, SESSION_MAX), cl = strnlen(head->cache, CACHE_MAX);
    unsigned char *p;
    wf_msg *m = msg_with_tail(WF_RENDER_POEM, 1 + sl + 1 + cl + 8, text, len, &p);
    if (m != NULL) {
        p = put_str8(p, head->session, SESSION_MAX);
        p = put_str8(p, head->cache, CACHE_MAX);
        put32(put32(p, head->age_s), head->fault);
    }
    return m;
}

int wf_render_poem_parse(wf_msg *m, wf_render_poem *head, const void **text, size_t *len)
{
    struct rd r;
    if (rd_open(&r, m, WF_RENDER_POEM) != 0)
        return WF_EINVAL;
    get_str(&r, 1, head->session, SESSION_MAX);
    get_str(&r, 1, head->cache, CACHE_MAX);
    head->age_s = (uint32_t)get(&r, 4);
    head->fault = (uint32_t)get(&r, 4);
    if (head->fault > WF_RENDER_FAULT_ENCODING)
        return WF_EINVAL;
    return rd_tail(&r, text, len);
}

size_t wf__render_page_head_size(const wf_render_page *head)
{
    return 1 + strnlen(head->session, SESSION_MAX) + 4;
}

void wf__render_page_head_put(const wf_render_page *head, unsigned char *out)
{
    put32(put_str8(out, head->session, SESSION_MAX), head->views);
}

wf_msg *wf_render_page_msg_new(const wf_render_page *head, const void *html, size_t len)
{
    unsigned char *p;
    wf_msg *m = msg_with_tail(WF_RENDER_POEM, wf__render_page_head_size(head), html, len, &p);
    if (m != NULL)
        wf__render_page_head_put(head, p);
    return m;
}

int wf_render_page_parse(wf_msg *m, wf_render_page *head, const void **html, size_t *len)
{
    struct rd r;
    if (rd_open(&r, m, WF_RENDER_POEM) != 0)
        return WF_EINVAL;
    get_str(&r, 1, head->session, SESSION_MAX);
    head->views = (uint32_t)get(&r, 4);
    return rd_tail(&r, html, len);
}

wf_msg *wf_render_error_msg_new(const wf_render_error *head, const void *trace, size_t len)
{
    if (head->status < 100 || head->status > 599 || head->debug > 1)
        return NULL;
    size_t il = strnlen(head->id, ID_MAX), ml = strnlen(head->message, MESSAGE_MAX);
    unsigned char *p;
    wf_msg *m = msg_with_tail(WF_RENDER_ERROR, 2 + 1 + il + 2 + ml + 1, trace, len, &p);
    if (m != NULL) {
        p = put16(p, head->status);
        p = put_str8(p, head->id, ID_MAX);
        p = put16(p, (uint32_t)ml);
        memcpy(p, head->message, ml);
        p[ml] = (unsigned char)head->debug;
    }
    return m;
}

int wf_render_error_parse(wf_msg *m, wf_render_error *head, const void **trace, size_t *len)
{
    struct rd r;
    if (rd_open(&r, m, WF_RENDER_ERROR) != 0)
        return WF_EINVAL;
    head->status = (uint32_t)get(&r, 2);
    get_str(&r, 1, head->id, ID_MAX);
    get_str(&r, 2, head->message, MESSAGE_MAX);
    head->debug = (uint32_t)get(&r, 1);
    if (head->status < 100 || head->status > 599 || head->debug > 1)
        return WF_EINVAL;
    return rd_tail(&r, trace, len);
}

/* ---- the transformer's request ---- */

wf_msg *wf_transform_msg_new(const char *name, const void *poem, size_t len, uint32_t wait_ms)
{
    size_t nl = name ? strlen(name) : 0;
    if (!wf_transform_name_valid(name, nl))
        return NULL;
    unsigned char *p;
    wf_msg *m = msg_with_tail(WF_TRANSFORM, 1 + nl + 4, poem, len, &p);
    if (m != NULL) {
        *p++ = (unsigned char)nl;
        memcpy(p, name, nl);
        put32(p + nl, wait_ms);
    }
    return m;
}

int wf_transform_parse(wf_msg *m, wf_transform_head *head, const void **poem, size_t *len)
{
    struct rd r;
    char name[WF_TRANSFORM_NAME_MAX + 1];
    if (rd_open(&r, m, WF_TRANSFORM) != 0)
        return WF_EINVAL;
    get_str(&r, 1, name, WF_TRANSFORM_NAME_MAX);
    head->wait_ms = (uint32_t)get(&r, 4);
    head->reserved = 0;
    if (r.bad || !wf_transform_name_valid(name, strlen(name)))
        return WF_EINVAL;
    memset(head->name, 0, sizeof head->name);
    memcpy(head->name, name, strlen(name));
    return rd_tail(&r, poem, len);
}
