/* Ping-pong: two actors; ping asks, pong answers, and ping's next ask goes
 * out from the callback of the last reply, in ping's own turn. */
#include <stdio.h>

#include <weft/weft.h>

enum { PING = 1, START };
#define ROUNDS 5

/* pong answers every ping with the same number. */
static wf_result pong_ping(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(PING, wf_msg_body(m), sizeof(int)));
}

static const wf_handler pong_handlers[] = {{PING, "ping", pong_ping, 0}};
static const wf_behaviour pong = {.name = "pong",
                                  .handlers = pong_handlers,
                                  .nhandlers = sizeof pong_handlers / sizeof pong_handlers[0]};

/* ping asks pong ROUNDS times, one after the other, then stops the node. */
struct ping {
    wf_node *node;
    wf_pid self, pong;
};

static wf_result on_pong(wf_result r, void *arg);

static void send_ping(struct ping *s, int n)
{
    wf_deferred *d = wf_ask_as(s->node, s->self, s->pong, wf_msg_new(PING, &n, sizeof n), 1000);
    wf_deferred_add_callback(d, on_pong, s);
    wf_deferred_release(d);
}

static wf_result on_pong(wf_result r, void *arg)
{
    struct ping *s = arg;
    int n = *(int *)wf_msg_body(r.u.ptr);
    printf("ping %d -> pong %d\n", n, n);
    if (n < ROUNDS)
        send_ping(s, n + 1);
    else
        wf_node_shutdown(s->node);
    return r;
}

static wf_result ping_start(wf_ctx *ctx, wf_msg *m)
{
    struct ping *s = wf_ctx_state(ctx);
    *s = (struct ping){wf_ctx_node(ctx), wf_ctx_self(ctx), wf_lookup(wf_ctx_node(ctx), "pong")};
    send_ping(s, 1);
    return wf_result_none();
}

static const wf_handler ping_handlers[] = {{START, "start", ping_start, 0}};
static const wf_behaviour ping = {.name = "ping",
                                  .state_size = sizeof(struct ping),
                                  .handlers = ping_handlers,
                                  .nhandlers = sizeof ping_handlers / sizeof ping_handlers[0]};

int main(void)
{
    wf_node *node = wf_node_new(&(wf_node_config){.name = "example"});
    wf_pid p;
    wf_spawn(node, "pong", &pong, NULL, NULL);
    wf_spawn(node, "ping", &ping, NULL, &p);
    wf_tell(node, p, wf_msg_new(START, NULL, 0));
    wf_node_run(node); /* until ping shuts the node down */
    wf_node_free(node);
    return 0;
}
