/* The renderer actor: HTML pages from template files.
 *
 * It renders a poem page with a per-session page-view counter ("Page view #N
 * in this session"), and error pages. Templates are files (poem.html,
 * error.html) with {{name}} placeholders; every value put into a page is
 * HTML-escaped.
 *
 * The first page for a poem's text is prepared on libuv's thread pool
 * (template and escaped poem, holes left for the per-request values) and
 * kept, keyed by the exact text; later pages for the same text are made on
 * the loop from those parts, without a trip to the pool. Prepared pages are
 * bounded (max_prepared_bytes, least recently used forgotten first); a new
 * text is a new key, so a changed poem is never shown with an old page.
 * Error pages are made on the pool. The actor's handlers still run one at
 * a time, so the sessions live in this one actor.
 */
#ifndef WEFT_RENDERER_H
#define WEFT_RENDERER_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Messages the renderer handles. WF_RENDER_POEM's body is a wf_render_poem
 * then the poem text; its reply, a wf_render_page then the HTML.
 * WF_RENDER_ERROR's body is a wf_render_error then the trace text; its
 * reply, the HTML. The heads travel encoded (the functions below), not as
 * these structs. 0x52450003 is taken: the renderer asks itself with it. */
#define WF_RENDER_POEM  0x52450001u
#define WF_RENDER_ERROR 0x52450002u

/* Faults a test can ask for (wf_render_poem.fault). */
enum wf_render_fault {
    WF_RENDER_FAULT_NONE = 0,
    WF_RENDER_FAULT_BEFORE = 1,   /* fail before rendering */
    WF_RENDER_FAULT_ENCODING = 2, /* fail half way through the page */
};

typedef struct wf_render_poem {
    char session[33]; /* the session's id from its cookie, or "" for a new one */
    char cache[16];   /* HIT, MISS, COALESCED, STALE: shown on the page */
    uint32_t age_s;
    uint32_t fault; /* enum wf_render_fault */
} wf_render_poem;

/* The head of a WF_RENDER_POEM reply; the HTML follows. */
typedef struct wf_render_page {
    char session[33]; /* the session's id: set it as the cookie */
    uint32_t views;   /* this page view's number in the session */
} wf_render_page;

typedef struct wf_render_error {
    uint32_t status;   /* HTTP status (100..599) */
    char id[17];       /* the failure's short id */
    char message[256]; /* one line for people */
    uint32_t debug;    /* 1: include the trace text that follows */
} wf_render_error;

typedef struct wf_renderer_config {
    const char *template_dir;  /* holds poem.html and error.html */
    size_t max_sessions;       /* sessions remembered; 0: 100000 (oldest forgotten) */
    size_t max_prepared_bytes; /* prepared poem pages kept (texts, pages and their
                                  bookkeeping); 0: 4 MiB (least recently used forgotten) */
} wf_renderer_config;

/* Its init reads the templates (a missing one fails the spawn with
 * WF_EINVAL) and takes a const wf_renderer_config * (borrowed: it must
 * outlive the actor). wf_renderer_spawn: loop thread, or before the node
 * runs. */
WF_API extern const wf_behaviour wf_renderer_behaviour;

static inline int wf_renderer_spawn(wf_node *n, const char *name, const wf_renderer_config *cfg,
                                    wf_pid *pid)
{
    return wf_spawn(n, name, &wf_renderer_behaviour, (void *)cfg, pid);
}

/* The messages in their encoding, whatever the host (big-endian, checked
 * on decoding; actors/std/common/messages.c has the layouts). Each _new
 * copies the head's fields and the caller's tail[0..len) into a message
 * the caller owns; NULL if a field is out of range (a fault, a status) or
 * memory is short. Strings longer than their field are cut. Each _parse
 * fills the caller's head from m (which stays the caller's) and points
 * *tail into m (valid while m is), *len its length: 0 or WF_EINVAL. Any
 * thread. */
WF_API wf_msg *wf_render_poem_msg_new(const wf_render_poem *head, const void *text, size_t len);
WF_API int wf_render_poem_parse(wf_msg *m, wf_render_poem *head, const void **text, size_t *len);
WF_API wf_msg *wf_render_page_msg_new(const wf_render_page *head, const void *html, size_t len);
WF_API int wf_render_page_parse(wf_msg *m, wf_render_page *head, const void **html, size_t *len);
WF_API wf_msg *wf_render_error_msg_new(const wf_render_error *head, const void *trace, size_t len);
WF_API int wf_render_error_parse(wf_msg *m, wf_render_error *head, const void **trace, size_t *len);

/* wf_renderer_default_templates: the template directory shipped with
 * weft's sources (for examples, demos and tests run from a build tree).
 * Static storage, never freed; any thread. */
WF_API const char *wf_renderer_default_templates(void);

#ifdef __cplusplus
}
#endif
#endif
