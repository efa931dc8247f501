/* libFuzzer target: weft-view's whole reading path. The input is a trace
 * as a file would hold it: binary chunks (when it starts with "WFTR") or
 * JSON lines, read into a store (jansson for the lines), built into the
 * model (causality merge, clock correction, traces, runs), filtered and
 * drawn as the chart, the summary and the Chrome export, to /dev/null.
 * Whatever the bytes: no crash, no leak, no undefined behaviour; a bad
 * line or chunk is skipped.
 *
 * Seeds: seeds/ (the viewer's fixtures and node-written chunks);
 * dictionary viewer.dict. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chart.h"
#include "chrome.h"
#include "event.h"
#include "filter.h"
#include "model.h"
#include "summary.h"
#include "tracefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        return 0;
    wv_store s;
    wv_store_init(&s, NULL);
    unsigned long line = 0;
    if (wf__tf_is_binary(data, size)) {
        if (wv_store_add_chunks(&s, "fuzz", &line, data, size, true) < 0)
            goto done;
    } else {
        const char *p = (const char *)data, *end = p + size;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = (size_t)((nl ? nl : end) - p);
            if (wv_store_add_line(&s, "fuzz", ++line, p, n) < 0)
                goto done;
            p += n + (nl != NULL);
        }
    }
    wv_model m;
    if (wv_model_build(&m, &s) == 0) {
        wv_filter f = {.from_ns = WV_NONE, .to_ns = WV_NONE};
        char err[256];
        if (wv_filter_apply(&m, &f, err, sizeof err) == 0) {
            wv_chart_render(devnull, &m, &(wv_chart_opts){.width = 120});
            wv_summary_render(devnull, &m, s.skipped);
            wv_chrome_render(devnull, &m);
        }
        wv_model_free(&m);
    }
done:
    wv_store_free(&s);
    return 0;
}
