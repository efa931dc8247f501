/* HTTP status reason phrases, for every writer of a status line (the
 * listener, the renderer, the poetry server, the benchmark ceiling).
 * Internal to weft (weft_http). */
#ifndef WF_HTTP_STATUS_H
#define WF_HTTP_STATUS_H

/* The reason phrase for status ("Bad Gateway"); static storage. Any
 * thread. */
const char *wf__http_reason(int status);

#endif
