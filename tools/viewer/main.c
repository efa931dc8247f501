/* weft-view: reads the traces weft nodes write (binary files, flight
 * recorder dumps, JSON lines, or live from their PUB sockets) and shows
 * them as a terminal sequence chart, a self-contained HTML page, Chrome
 * Trace Event JSON or statistics, or converts them to JSON lines. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "chart.h"
#include "chrome.h"
#include "event.h"
#include "filter.h"
#include "html.h"
#include "live.h"
#include "model.h"
#include "summary.h"

static const char usage_text[] =
    "usage: weft-view [OPTIONS] FILE...          trace files (one per node, binary or JSON\n"
    "                                            lines), a directory of them (a flight\n"
    "                                            recorder's dump), or - for standard input\n"
    "       weft-view --live URL... [--follow]   subscribe to nodes' trace PUB sockets\n"
    "Modes (default --chart; several may be given):\n"
    "  --chart            terminal sequence chart\n"
    "  --html OUT.html    self-contained HTML view\n"
    "  --chrome OUT.json  Chrome Trace Event JSON (Perfetto, chrome://tracing)\n"
    "  --summary          per-actor and per-message-type statistics\n"
    "  --jsonl OUT        convert: every event as a JSON line (weft/trace.h), as it is\n"
    "                     read (no filters, no other mode); - for standard output\n"
    "Filters (all modes):\n"
    "  --trace ID         a trace by id or prefix; 'last' (latest first event) or 'slowest'\n"
    "  --actor NAME       events of NAME (or NAME@NODE) and messages to or from it; repeatable\n"
    "  --from MS --to MS  a window in ms from the first event\n"
    "  --failed           only traces with a failure\n"
    "Live:\n"
    "  --follow           print chart rows as events arrive (until SIGINT or --seconds);\n"
    "                     --summary, --html, --chrome are then made from all of them\n"
    "  --seconds N        how long to listen (default 2 without --follow)\n"
    "Output:\n"
    "  --no-color         no ANSI colors (default: colors on a terminal without NO_COLOR)\n"
    "  --width N          chart width in columns (default: the terminal's, or 120)\n"
    "Exit status: 0 shown, 1 nothing could be read or no trace matched, 2 usage error.\n";

/* Set by SIGINT/SIGTERM; main owns it. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct options {
    const char **inputs;
    size_t ninputs;
    const char **actors;
    size_t nactors;
    bool live, follow, chart, summary;
    const char *html, *chrome, *jsonl;
    double seconds;
    bool seconds_set;
    wv_filter filter;
    int width;
    int color; /* -1: decide from the terminal */
} options;

static int usage_error(const char *fmt, const char *arg)
{
    fputs("weft-view: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(weft-view --help for usage)\n", stderr);
    return 2;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v != v)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, 1 for --help (printed), or an exit status for a usage error. */
static int options_parse(options *o, int argc, char **argv)
{
    o->filter.from_ns = o->filter.to_ns = WV_NONE;
    o->color = -1;
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    o->actors = calloc((size_t)argc, sizeof *o->actors);
    if (o->inputs == NULL || o->actors == NULL)
        return usage_error("%s", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        double v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 1;
        } else if (strcmp(a, "--live") == 0) {
            o->live = true;
        } else if (strcmp(a, "--follow") == 0) {
            o->follow = true;
        } else if (strcmp(a, "--chart") == 0) {
            o->chart = true;
        } else if (strcmp(a, "--summary") == 0) {
            o->summary = true;
        } else if (strcmp(a, "--failed") == 0) {
            o->filter.failed = true;
        } else if (strcmp(a, "--no-color") == 0) {
            o->color = 0;
        } else if (strcmp(a, "--color") == 0) {
            o->color = 1;
        } else if (strcmp(a, "--html") == 0 || strcmp(a, "--chrome") == 0 ||
                   strcmp(a, "--jsonl") == 0 || strcmp(a, "--trace") == 0 ||
                   strcmp(a, "--actor") == 0 || strcmp(a, "--from") == 0 ||
                   strcmp(a, "--to") == 0 || strcmp(a, "--seconds") == 0 ||
                   strcmp(a, "--width") == 0) {
            if (next == NULL)
                return usage_error("%s needs a value", a);
            i++;
            if (strcmp(a, "--html") == 0) {
                o->html = next;
            } else if (strcmp(a, "--chrome") == 0) {
                o->chrome = next;
            } else if (strcmp(a, "--jsonl") == 0) {
                o->jsonl = next;
            } else if (strcmp(a, "--trace") == 0) {
                o->filter.trace = next;
            } else if (strcmp(a, "--actor") == 0) {
                o->actors[o->nactors++] = next;
            } else if (parse_number(next, &v) < 0 || v < 0 || v > 9e12) {
                return usage_error("%s: not a number in range", a);
            } else if (strcmp(a, "--from") == 0) {
                o->filter.from_ns = (int64_t)(v * 1e6);
            } else if (strcmp(a, "--to") == 0) {
                o->filter.to_ns = (int64_t)(v * 1e6);
            } else if (strcmp(a, "--seconds") == 0) {
                o->seconds = v;
                o->seconds_set = true;
            } else {
                if (v < 40 || v > 1000)
                    return usage_error("%s", "--width: between 40 and 1000 columns");
                o->width = (int)v;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option %s", a);
        } else {
            o->inputs[o->ninputs++] = a;
        }
    }
    o->filter.actors = o->actors;
    o->filter.nactors = o->nactors;
    if (o->ninputs == 0)
        return usage_error("%s",
                           o->live ? "--live needs at least one URL" : "no trace files given");
    if (o->follow && !o->live)
        return usage_error("%s", "--follow works with --live");
    if (o->follow &&
        (o->filter.failed || (o->filter.trace && (!strcmp(o->filter.trace, "last") ||
                                                  !strcmp(o->filter.trace, "slowest")))))
        return usage_error("%s", "--follow cannot wait for --failed, --trace last or slowest; "
                                 "collect without --follow instead");
    if (o->jsonl != NULL && (o->chart || o->summary || o->html || o->chrome || o->follow ||
                             o->filter.trace || o->nactors || o->filter.failed ||
                             o->filter.from_ns != WV_NONE || o->filter.to_ns != WV_NONE))
        return usage_error("%s", "--jsonl converts everything read: no filter or other mode");
    if (!o->chart && !o->summary && o->html == NULL && o->chrome == NULL && o->jsonl == NULL)
        o->chart = true;
    if (o->live && !o->follow && !o->seconds_set)
        o->seconds = 2;
    return 0;
}

static int terminal_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    int n = cols ? atoi(cols) : 0;
    return n >= 40 && n <= 1000 ? n : 120;
}

static bool terminal_color(void)
{
    const char *term = getenv("TERM");
    return isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL &&
           !(term && strcmp(term, "dumb") == 0);
}

/* --follow: each batch rebuilds the model and prints the rows not yet
 * shown. Offsets and the time origin may move as events from more nodes
 * arrive; rows already printed stay as they were. */
struct follow {
    wv_store *store;
    const wv_filter *filter;
    const wv_chart_opts *chart;
    wv_chart_follow cf;
};

static void follow_batch(void *arg)
{
    struct follow *f = arg;
    wv_model m;
    char err[256];
    if (wv_model_build(&m, f->store) < 0)
        return;
    if (wv_filter_apply(&m, f->filter, err, sizeof err) == 0)
        wv_chart_follow_rows(stdout, &m, f->chart, &f->cf);
    wv_model_free(&m);
}

static int write_file(const char *path, const char *what, int (*render)(FILE *, void *), void *arg)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "weft-view: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = render(f, arg);
    if (fflush(f) != 0 || ferror(f))
        rc = -1;
    if (f != stdout && fclose(f) != 0)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "weft-view: writing the %s to %s failed\n", what, path);
    return rc;
}

struct render_args {
    const wv_model *m;
    const char *title;
    size_t skipped;
};

static int render_html(FILE *f, void *arg)
{
    struct render_args *r = arg;
    return wv_html_render(f, r->m, r->title, r->skipped);
}

static int render_chrome(FILE *f, void *arg)
{
    struct render_args *r = arg;
    return wv_chrome_render(f, r->m);
}

static char *make_title(const options *o)
{
    size_t len = 32;
    for (size_t i = 0; i < o->ninputs; i++)
        len += strlen(o->inputs[i]) + 2;
    char *t = malloc(len);
    if (t == NULL)
        return NULL;
    strcpy(t, "weft trace: ");
    for (size_t i = 0; i < o->ninputs; i++) {
        const char *base = strrchr(o->inputs[i], '/');
        base = base && base[1] ? base + 1 : o->inputs[i];
        if (i > 0)
            strcat(t, ", ");
        strcat(t, base);
    }
    return t;
}

/* --jsonl: events go to the output as they are read, none kept. */
static int convert(const options *o, wv_store *store)
{
    FILE *f = strcmp(o->jsonl, "-") == 0 ? stdout : fopen(o->jsonl, "w");
    if (f == NULL) {
        fprintf(stderr, "weft-view: cannot write %s: %s\n", o->jsonl, strerror(errno));
        return 1;
    }
    store->jsonl = f;
    size_t read = 0;
    if (o->live) {
        wv_live_opts lo = {
            .urls = o->inputs, .nurls = o->ninputs, .seconds = o->seconds, .stop = &stop_requested};
        read = wv_live_collect(store, &lo) == 0;
    } else {
        for (size_t i = 0; i < o->ninputs; i++)
            read += wv_store_load(store, o->inputs[i]) == 0;
    }
    int rc = read > 0 ? 0 : 1;
    if (fflush(f) != 0 || ferror(f)) {
        fprintf(stderr, "weft-view: writing %s failed\n", o->jsonl);
        rc = 1;
    }
    if (f != stdout)
        fclose(f);
    store->jsonl = NULL;
    if (read == 0)
        fprintf(stderr, "weft-view: no trace could be read\n");
    return rc;
}

int main(int argc, char **argv)
{
    options o = {0};
    wv_store store;
    wv_model model = {0};
    bool have_model = false;
    char *title = NULL;
    int status = options_parse(&o, argc, argv);
    wv_store_init(&store, stderr);
    if (status != 0) {
        status = status == 1 ? 0 : status;
        goto done;
    }
    status = 1;
    wv_chart_opts chart = {.width = o.width ? o.width : terminal_width(),
                           .color = o.color >= 0 ? o.color == 1 : terminal_color()};
    if (o.live) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    if (o.jsonl != NULL) {
        status = convert(&o, &store);
        goto done;
    }
    if (o.live) {
        struct follow fl = {.store = &store, .filter = &o.filter, .chart = &chart};
        wv_live_opts lo = {.urls = o.inputs,
                           .nurls = o.ninputs,
                           .seconds = o.seconds,
                           .stop = &stop_requested,
                           .on_batch = o.follow ? follow_batch : NULL,
                           .arg = &fl};
        int rc = wv_live_collect(&store, &lo);
        wv_chart_follow_free(&fl.cf);
        if (rc < 0)
            goto done;
        /* The rows were printed as they came; other modes asked for are
         * made from everything collected. */
        o.chart = o.chart && !o.follow;
        if (o.follow && !o.summary && o.html == NULL && o.chrome == NULL) {
            status = 0;
            goto done;
        }
    } else {
        size_t read = 0;
        for (size_t i = 0; i < o.ninputs; i++)
            read += wv_store_load(&store, o.inputs[i]) == 0;
        if (read == 0) {
            fprintf(stderr, "weft-view: no trace file could be read\n");
            goto done;
        }
    }
    if (wv_model_build(&model, &store) < 0) {
        fprintf(stderr, "weft-view: out of memory\n");
        goto done;
    }
    have_model = true;
    char err[256];
    if (wv_filter_apply(&model, &o.filter, err, sizeof err) < 0) {
        fprintf(stderr, "weft-view: %s\n", err);
        goto done;
    }
    status = 0;
    title = make_title(&o);
    struct render_args ra = {&model, title ? title : "weft trace", store.skipped};
    if (o.chart)
        wv_chart_render(stdout, &model, &chart);
    if (o.summary) {
        if (o.chart)
            fputc('\n', stdout);
        wv_summary_render(stdout, &model, store.skipped);
    }
    if (o.html && write_file(o.html, "HTML view", render_html, &ra) < 0)
        status = 1;
    if (o.chrome && write_file(o.chrome, "Chrome trace", render_chrome, &ra) < 0)
        status = 1;
    if (model.n == 0)
        fprintf(stderr, "weft-view: no events%s\n", o.live ? " arrived" : " in the input");
done:
    if (store.skipped > 0)
        fprintf(stderr, "weft-view: %zu malformed line%s skipped (of %zu)\n", store.skipped,
                store.skipped == 1 ? "" : "s", store.lines);
    if (model.clocks_inconsistent && have_model)
        fprintf(stderr, "weft-view: clocks disagree beyond what message pairs allow; "
                        "some arrivals may still show before their sends\n");
    free(title);
    if (have_model)
        wv_model_free(&model);
    wv_store_free(&store);
    free(o.inputs);
    free(o.actors);
    fflush(stdout);
    return status;
}
