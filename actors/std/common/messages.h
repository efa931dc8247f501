/* What the renderer needs of the message encoding (messages.c) beyond the
 * public functions: a page's head written in place, before the page it
 * assembles straight into the reply. Private to libweft_std. */
#ifndef WF_STD_MESSAGES_H
#define WF_STD_MESSAGES_H

#include <stddef.h>

#include <weft/renderer.h>

/* The bytes head takes encoded, and head written into out[0..that). */
size_t wf__render_page_head_size(const wf_render_page *head);
void wf__render_page_head_put(const wf_render_page *head, unsigned char *out);

#endif
