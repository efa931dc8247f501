/* Request framing (see request.h): libhttp-parser's callbacks fill the
 * reader; every byte of the request line and headers counts against
 * max_header, every body byte against max_body.
 *
 * libhttp-parser 2.9 (built without strict mode) tolerates what RFC 9112
 * forbids: "Name : value", obs-fold, bare LF line ends, a transfer coding
 * before chunked. Each is a way for two readers of the same bytes to see
 * different requests, so the reader checks the head itself: the parser is
 * paused when the headers are complete and when the message is, which
 * tells exactly which bytes were the head; those go through lex() below
 * before the request is acted upon. Bodies are not lexed: a request with a
 * chunked body is the last one read on its connection. */
#include <string.h>
#include <strings.h>

#include "request.h"

/* Where lex() is (wf__http_reader.lex). */
enum {
    L_START, /* before the request line, or in its leading empty lines */
    L_REQ,   /* in the request line */
    L_LINE,  /* at the start of a header line */
    L_NAME,  /* in a field name */
    L_VALUE, /* after the colon */
    L_END,   /* CR of the empty line that ends the head */
    L_DONE,  /* the head is over */
};

static int refuse(wf__http_reader *r, int status, const char *why)
{
    if (r->fail_status == 0) {
        r->fail_status = status;
        r->why = why;
    }
    return -1;
}

/* A chunked body's framing (RFC 9112 7.1): chunk-size [chunk-ext] CRLF,
 * data CRLF, ..., 0 [chunk-ext] CRLF, trailer lines, CRLF. The parser
 * takes more than this (junk after the size, such as "5 x"), which another
 * reader of the same bytes may take otherwise. */
enum {
    C_HEAD_LF, /* the head's last LF: the parser pauses before it */
    C_SIZE0,   /* the size's first digit */
    C_SIZE,    /* more digits, or what ends the size */
    C_BWS,     /* whitespace after the size: only ';' may follow */
    C_EXT,     /* an extension, up to CR */
    C_SIZE_LF, /* LF after the size line */
    C_DATA,    /* chunk_left bytes of data */
    C_DATA_CR, /* CR after the data */
    C_DATA_LF,
    C_TRAILER0, /* the start of a trailer line, or the final CR */
    C_TRAILER,  /* in a trailer line */
    C_TRAILER_LF,
    C_END_LF, /* the last LF */
    C_DONE,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Checks a chunked body's bytes as they come (any split), from one call to
 * the next through r->chunk and r->chunk_left. Returns 0, or -1 with the
 * refusal set. */
static int chunk_lex(wf__http_reader *r, const char *data, size_t n)
{
    unsigned char st = r->chunk;
    uint64_t left = r->chunk_left;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        int h;
        if (st == C_HEAD_LF) {
            st = C_SIZE0;
            if (c == '\n')
                continue;
        }
        switch (st) {
        case C_SIZE0:
        case C_SIZE:
            if ((h = hexval(c)) >= 0) {
                if (left > (UINT64_MAX >> 4))
                    return refuse(r, 400, "chunk size too large");
                left = left << 4 | (uint64_t)h;
                st = C_SIZE;
            } else if (st == C_SIZE0) {
                return refuse(r, 400, "malformed chunk size line");
            } else if (c == ';') {
                st = C_EXT;
            } else if (c == ' ' || c == '\t') {
                st = C_BWS;
            } else if (c == '\r') {
                st = C_SIZE_LF;
            } else {
                return refuse(r, 400, "malformed chunk size line");
            }
            break;
        case C_BWS:
            if (c == ';')
                st = C_EXT;
            else if (c != ' ' && c != '\t')
                return refuse(r, 400, "malformed chunk size line");
            break;
        case C_EXT:
            if (c == '\r')
                st = C_SIZE_LF;
            else if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
                return refuse(r, 400, "malformed chunk extension");
            break;
        case C_SIZE_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR in a chunk size line");
            st = left == 0 ? C_TRAILER0 : C_DATA;
            break;
        case C_DATA: {
            size_t take = n - i < left ? n - i : (size_t)left;
            left -= take;
            i += take - 1;
            if (left == 0)
                st = C_DATA_CR;
            break;
        }
        case C_DATA_CR:
            if (c != '\r')
                return refuse(r, 400, "chunk data longer than its size");
            st = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR after chunk data");
            st = C_SIZE0;
            break;
        case C_TRAILER0:
            if (c == '\n')
                return refuse(r, 400, "bare LF in the trailer");
            st = c == '\r' ? C_END_LF : C_TRAILER;
            break;
        case C_TRAILER:
            if (c == '\n')
                return refuse(r, 400, "bare LF in the trailer");
            if (c == '\r')
                st = C_TRAILER_LF;
            break;
        case C_TRAILER_LF:
        case C_END_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR in the trailer");
            st = st == C_END_LF ? C_DONE : C_TRAILER0;
            break;
        default:
            return refuse(r, 400, "bytes after the last chunk");
        }
    }
    r->chunk = st;
    r->chunk_left = left;
    return 0;
}

/* Checks the head's bytes as they come (any split), from one call to the
 * next through r->lex and r->lex_cr. Returns 0, or -1 with the refusal set. */
static int lex(wf__http_reader *r, const char *data, size_t n)
{
    unsigned char st = r->lex;
    bool cr = r->lex_cr;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\n') {
            if (!cr)
                return refuse(r, 400, "bare LF in the request head (lines end with CRLF)");
            cr = false;
            st = st == L_START ? L_START : st == L_END ? L_DONE : L_LINE;
            continue;
        }
        if (cr)
            return refuse(r, 400, "bare CR in the request head");
        if (c == '\r') {
            cr = true;
            if (st == L_LINE)
                st = L_END;
            continue;
        }
        switch (st) {
        case L_START:
            st = L_REQ;
            break;
        case L_LINE:
            if (c == ' ' || c == '\t')
                return refuse(r, 400, "obsolete line folding in a header");
            st = L_NAME; /* and the byte is the name's first */
            /* fall through */
        case L_NAME:
            if (c == ':')
                st = L_VALUE;
            else if (c == ' ' || c == '\t')
                return refuse(r, 400, "whitespace in a header name or before its colon");
            break;
        case L_VALUE:
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return refuse(r, 400, "control character in a header value");
            break;
        default:
            break;
        }
    }
    r->lex = st;
    r->lex_cr = cr;
    return 0;
}

/* Judges the Transfer-Encoding values: exactly "chunked" is read; another
 * coding before it is one this server does not implement (501); anything
 * else leaves the body's length unknown (400, RFC 9112 6.3). */
static int check_te(wf__http_reader *r)
{
    if (r->te_cut)
        return refuse(r, 501, "transfer codings other than chunked are not implemented");
    size_t chunked = 0, other = 0;
    bool last_chunked = false;
    for (const char *p = r->te, *end = r->te + r->te_len; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *a = p, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) {
            last_chunked = b - a == 7 && strncasecmp(a, "chunked", 7) == 0;
            chunked += last_chunked;
            other += !last_chunked;
        }
        p = comma ? comma + 1 : end;
    }
    if (!last_chunked || chunked != 1)
        return refuse(r, 400, "Transfer-Encoding must end in chunked, once");
    if (other > 0)
        return refuse(r, 501, "transfer codings other than chunked are not implemented");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->in_request = true;
    r->headers_done = false;
    r->target_len = r->header_bytes = r->body_bytes = r->name_len = 0;
    r->after_value = r->too_big_header = r->too_big_body = false;
    r->te_seen = r->te_cut = false;
    r->te_len = 0;
    r->chunk = C_HEAD_LF;
    r->chunk_left = 0;
    /* A request without one of the fields must not read the previous
     * request's value (a session cookie of another request). */
    for (size_t i = 0; i < r->nfields; i++) {
        r->fields[i].len = 0;
        r->fields[i].cut = false;
        if (r->fields[i].size > 0)
            r->fields[i].buf[0] = '\0';
    }
    return 0;
}

static int count_header(wf__http_reader *r, size_t n)
{
    r->header_bytes += n;
    if (r->header_bytes > r->max_header) {
        r->too_big_header = true;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0 || r->target_len + n >= WF__HTTP_TARGET_MAX)
        return refuse(r, 414, "request target too long");
    memcpy(r->target + r->target_len, at, n);
    r->target_len += n;
    r->target[r->target_len] = '\0';
    return 0;
}

/* Appends at[0..n) to the string buf (of *len bytes, size bytes of room),
 * cutting what does not fit: a header may arrive in pieces. Returns
 * whether something was cut. */
static bool append_cut(char *buf, size_t size, size_t *len, const char *at, size_t n)
{
    size_t k = n < size - 1 - *len ? n : size - 1 - *len;
    memcpy(buf + *len, at, k);
    *len += k;
    buf[*len] = '\0';
    return k < n;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0)
        return -1;
    if (r->after_value)
        r->name_len = 0; /* a new header starts */
    r->after_value = false;
    append_cut(r->name, sizeof r->name, &r->name_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0)
        return -1;
    bool first = !r->after_value; /* the first piece of this header's value */
    r->after_value = true;        /* the next name callback starts a new header */
    if (r->headers_done)
        return 0; /* a trailer: not a header of the request */
    if (strcasecmp(r->name, "transfer-encoding") == 0) {
        /* Two Transfer-Encoding headers are one list (RFC 9110 5.3). */
        if (first && r->te_seen && append_cut(r->te, sizeof r->te, &r->te_len, ",", 1))
            r->te_cut = true;
        r->te_seen = true;
        if (append_cut(r->te, sizeof r->te, &r->te_len, at, n))
            r->te_cut = true;
    }
    for (size_t i = 0; i < r->nfields; i++) {
        wf__http_field *f = &r->fields[i];
        if (f->size > 0 && strcasecmp(r->name, f->name) == 0) {
            if (append_cut(f->buf, f->size, &f->len, at, n))
                f->cut = true;
            break;
        }
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->headers_done = true;
    /* The feed checks the head's bytes, then the Transfer-Encoding, before
     * the request goes on: in that order whatever the reads (a bad byte of
     * the head is found before the coding it folds into is judged). */
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    r->body_bytes += n;
    if (r->body_bytes > r->max_body) {
        r->too_big_body = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->in_request = false;
    r->lex = L_START; /* the next head starts after this byte */
    r->lex_cr = false;
    /* After a chunked body, nothing more is read: its framing is where
     * readers disagree (RFC 9112 6.3), so its answer closes. So too after
     * CONNECT or an Upgrade, whose sender goes on in another protocol. */
    r->stopped = r->te_seen || p->upgrade;
    http_parser_pause(p, 1);
    r->pending = (wf__http_request){
        .method = (int)p->method,
        .method_name = http_method_str(p->method),
        .target = r->target,
        .target_len = r->target_len,
        .body_len = r->body_bytes,
        .keep_alive = http_should_keep_alive(p) != 0 && !r->stopped,
    };
    if (r->te_seen) {
        r->has_pending = true; /* see wf__http_reader_feed */
        return 0;
    }
    return r->on_request(r->arg, &r->pending) != 0 ? -1 : 0;
}

/* Lexes data[0..n), the head's bytes the parser took before it refused
 * them: a refusal of the lexer's replaces the parser's (or a limit's), as
 * it is about earlier bytes. */
static void lex_first(wf__http_reader *r, const char *data, size_t n)
{
    int status = r->fail_status;
    const char *why = r->why;
    r->fail_status = 0;
    if (lex(r, data, n) == 0) {
        r->fail_status = status;
        r->why = why;
    } else {
        r->too_big_header = r->too_big_body = false;
    }
}

/* As lex_first, for a chunked body's bytes. */
static void chunk_first(wf__http_reader *r, const char *data, size_t n)
{
    int status = r->fail_status;
    const char *why = r->why;
    r->fail_status = 0;
    if (chunk_lex(r, data, n) == 0) {
        r->fail_status = status;
        r->why = why;
    } else {
        r->too_big_header = r->too_big_body = false;
    }
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void wf__http_reader_init(wf__http_reader *r, size_t max_header, size_t max_body,
                          wf__http_field *fields, size_t nfields, wf__http_on_request on_request,
                          void *arg)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->max_header = max_header;
    r->max_body = max_body;
    r->fields = fields;
    r->nfields = nfields;
    r->on_request = on_request;
    r->arg = arg;
}

static int failed(const wf__http_reader *r)
{
    if (r->fail_status != 0)
        return r->fail_status;
    if (r->too_big_header)
        return 431;
    return r->too_big_body ? 413 : 400;
}

int wf__http_reader_feed(wf__http_reader *r, const char *data, size_t n)
{
    if (r->fail_status != 0)
        return r->fail_status;
    /* The parser pauses at the end of each head and of each message, so
     * every run below is all head (lexed) or all body (not). */
    for (size_t off = 0; off < n && !r->stopped;) {
        bool head = !(r->in_request && r->headers_done);
        size_t used = http_parser_execute(&r->parser, &settings, data + off, n - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
        /* A chunked body's bytes are checked too, also those before a
         * complaint of the parser's, which they come before. */
        bool chunked_body = !head && r->te_seen;
        if (e != HPE_OK && e != HPE_PAUSED) {
            /* The head's bytes before the parser's complaint come first:
             * a refusal must not depend on where the reads were cut
             * (found by tools/weft fuzz http). */
            if (head)
                lex_first(r, data + off, used);
            else if (chunked_body)
                chunk_first(r, data + off, used);
            return failed(r);
        }
        if (chunked_body && chunk_lex(r, data + off, used) != 0)
            return failed(r);
        if (r->has_pending) {
            r->has_pending = false;
            if (r->on_request(r->arg, &r->pending) != 0) {
                refuse(r, 400, "the request was refused");
                return failed(r);
            }
        }
        if (head && lex(r, data + off, used) != 0)
            return failed(r);
        if (head && r->in_request && r->headers_done && r->lex != L_END && r->lex != L_DONE) {
            /* The parser stops on the LF of the empty line: the CR before
             * it must have been lexed. */
            refuse(r, 400, "bare LF in the request head (lines end with CRLF)");
            return failed(r);
        }
        if (head && r->in_request && r->headers_done && r->te_seen && check_te(r) != 0)
            return failed(r);
        if (e == HPE_PAUSED)
            http_parser_pause(&r->parser, 0);
        else if (used != n - off)
            return failed(r);
        off += used;
    }
    return 0;
}

const char *wf__http_reader_error(const wf__http_reader *r)
{
    return r->why != NULL ? r->why : http_errno_description(HTTP_PARSER_ERRNO(&r->parser));
}
