/* libFuzzer target: the trace settings (wf_trace_config_parse, the
 * --trace "file=..;sample=..;actors=..;types=.." of weft-node and the
 * demo), what a node makes of them (wf_node_trace_start, run-time
 * filters as the listener's /trace and weft-node's trace command set
 * them, wf_node_trace_describe), and W3C traceparent values. Whatever the
 * bytes: no crash or leak; what parses starts tracing or is refused with
 * WF_EINVAL; a running trace's description parses back to the same
 * settings.
 *
 * Input: the settings text; after a NUL, a filter's actors; after a second
 * NUL, its types. The file, ring and pub keys are parsed but not opened
 * (no files, no sockets). Seeds: seeds/, dictionary trace.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <weft/error.h>
#include <weft/node.h>
#include <weft/trace.h>

static wf_node *node; /* one for the process: made once, never running */

/* Starts cfg on the node: 0, or the error (never a crash). */
static int start(wf_trace_config cfg)
{
    cfg.file = NULL;
    cfg.pub_url = NULL;
    cfg.ring = NULL;
    cfg.capacity = 16; /* the smallest ring: the test is the settings */
    return wf_node_trace_start(node, &cfg);
}

/* The description of a running trace, as settings wf_trace_config_parse
 * reads ("sample=..;actors=..;types=.."): events and lost cut off. */
static void describe_settings(char *out, size_t size)
{
    wf_node_trace_describe(node, out, size);
    char *ev = strstr(out, ";events=");
    if (ev == NULL)
        __builtin_trap();
    *ev = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (node == NULL && (node = wf_node_new(&(wf_node_config){.name = "fuzz"})) == NULL)
        abort();
    /* The three NUL-separated parts. */
    char *text = malloc(size + 3);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = text[size + 2] = '\0';
    char *actors = text + strlen(text) + 1;
    if (actors > text + size)
        actors = text + size + 1;
    char *types = actors + strlen(actors) + 1;
    if (types > text + size + 1)
        types = text + size + 2;

    /* The settings text also as a traceparent value. */
    wf_trace_ctx tc;
    if (wf_traceparent_parse(text, strlen(text), &tc) == 0) {
        char out[WF_TRACEPARENT_LEN + 1];
        tc.span_id = tc.parent_id;
        wf_traceparent_format(&tc, out);
        wf_trace_ctx again;
        if (wf_traceparent_parse(out, strlen(out), &again) != 0 ||
            again.parent_id != tc.parent_id || memcmp(again.trace_id, tc.trace_id, 16) != 0)
            __builtin_trap();
    }

    char spec[4096], err[256], d1[4096], d2[4096];
    wf_trace_config cfg;
    size_t n = strlen(text);
    if (n >= sizeof spec)
        goto out;
    memcpy(spec, text, n + 1);
    err[0] = '\0';
    int rv = wf_trace_config_parse(spec, &cfg, err, sizeof err);
    if (rv != 0) {
        if (rv != WF_EINVAL || err[0] == '\0')
            __builtin_trap();
        goto out;
    }
    if (!(cfg.sample >= 0 && cfg.sample <= 1))
        __builtin_trap();
    rv = start(cfg);
    if (rv != 0) {
        if (rv != WF_EINVAL)
            __builtin_trap();
        goto out;
    }
    /* The description reads back as the same settings. */
    describe_settings(d1, sizeof d1);
    wf_node_trace_stop(node);
    if (strlen(d1) < sizeof d1 - 1) {
        char again[4096];
        memcpy(again, d1, strlen(d1) + 1);
        if (wf_trace_config_parse(again, &cfg, err, sizeof err) != 0 || start(cfg) != 0)
            __builtin_trap();
        describe_settings(d2, sizeof d2);
        if (strcmp(d1, d2) != 0)
            __builtin_trap();
    } else {
        if (start(cfg) != 0)
            __builtin_trap();
    }
    /* Filters changed at run time, as /trace?actors=..&types=.. does. */
    rv = wf_node_trace_filter(node, WF_TRACE_KEEP, actors, types);
    if (rv != 0 && rv != WF_EINVAL)
        __builtin_trap();
    describe_settings(d1, sizeof d1);
    wf_node_trace_stop(node);
out:
    free(text);
    return 0;
}
