/* A counter service with one blocking handler: "add" and "get" run on the
 * loop; "save" writes the total to a file on the thread pool (a blocking
 * call) while the loop keeps answering "get". The caller is main, on its
 * own thread, using wf_node_call. */
#include <stdio.h>
#include <string.h>

#include <weft/weft.h>

enum { ADD = 1, GET, SAVE };

struct counter {
    long total;
};

static wf_result on_add(wf_ctx *ctx, wf_msg *m)
{
    struct counter *c = wf_ctx_state(ctx);
    c->total += *(long *)wf_msg_body(m);
    return wf_result_none();
}

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    struct counter *c = wf_ctx_state(ctx);
    return wf_result_msg(wf_msg_new(GET, &c->total, sizeof c->total));
}

/* Runs on the thread pool: blocking I/O is fine here. Still one message at
 * a time for this actor, so reading the state is safe. */
static wf_result on_save(wf_ctx *ctx, wf_msg *m)
{
    struct counter *c = wf_ctx_state(ctx);
    FILE *f = fopen(wf_msg_body(m), "w");
    if (f == NULL)
        return WF_FAIL(WF_EUSER + 1, "cannot open %s", (char *)wf_msg_body(m));
    fprintf(f, "%ld\n", c->total);
    fclose(f);
    return wf_result_msg(wf_msg_new(SAVE, "saved", 6));
}

static const wf_handler handlers[] = {
    {ADD, "add", on_add, 0},
    {GET, "get", on_get, 0},
    {SAVE, "save", on_save, WF_HANDLER_BLOCKING},
};
static const wf_behaviour counter = {.name = "counter",
                                     .state_size = sizeof(struct counter),
                                     .handlers = handlers,
                                     .nhandlers = sizeof handlers / sizeof handlers[0]};

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/tmp/weft-counter.txt";
    wf_node *node = wf_node_new(&(wf_node_config){.name = "example"});
    wf_pid c;
    wf_spawn(node, "counter", &counter, NULL, &c);
    wf_node_start(node); /* the loop runs on its own thread from here */

    for (long i = 1; i <= 10; i++)
        wf_tell(node, c, wf_msg_new(ADD, &i, sizeof i));
    wf_result r = wf_node_call(node, c, wf_msg_new(GET, NULL, 0), 1000);
    printf("total: %ld\n", *(long *)wf_msg_body(r.u.ptr));
    wf_result_free(r);

    r = wf_node_call(node, c, wf_msg_new(SAVE, path, strlen(path) + 1), 1000);
    if (wf_result_is_failure(r)) {
        char *trace = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
        printf("save failed:\n%s", trace);
        wf_free(trace);
    } else {
        printf("%s to %s\n", (char *)wf_msg_body(r.u.ptr), path);
    }
    int failed = wf_result_is_failure(r);
    wf_result_free(r);

    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
    return failed;
}
