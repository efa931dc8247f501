/* Nodes in separate processes, over real nng sockets: remote asks and tells,
 * failure traces across hops, a node killed mid-ask, its restart, bad frames
 * from a raw socket, a peer without the secret, TLS. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <nng/nng.h>
#include <weft/wire.h>

#include "proc.h"

TestSuite(cluster, .timeout = 90);

static char dir[256];
static tu_proc a, b, c;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-cluster.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    tu_proc_kill(&a);
    tu_proc_kill(&b);
    tu_proc_kill(&c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Starts node name listening on url, dialling peer_url (may be NULL), with
 * the given secret and extra arguments. */
static void start_node(tu_proc *p, const char *name, const char *url, const char *peer_url,
                       const char *secret, const char *const *extra)
{
    const char *argv[32] = {WEFT_NODE, "--name", name, "--listen", url, "--secret", secret};
    int n = 7;
    if (peer_url) {
        argv[n++] = "--peer";
        argv[n++] = peer_url;
    }
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_proc_start(p, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(p, "ready", 5000), "%s did not start:\n%s", name, p->log);
}

static const char *url(const char *name)
{
    static char buf[4][300];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "ipc://%s/%s", dir, name);
    return buf[i];
}

/* b listens, a dials it; both up. */
static void pair(void)
{
    start_node(&b, "b", url("b"), NULL, "s3cret", NULL);
    start_node(&a, "a", url("a"), url("b"), "s3cret", NULL);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s", a.log);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

Test(cluster, remote_ask_and_tell, .init = setup, .fini = teardown)
{
    pair();
    tu_proc_send(&a, "ask echo@b hello over the wire");
    const char *l = tu_proc_expect(&a, "ok ", 5000);
    cr_assert_not_null(l, "%s", a.log);
    cr_assert_str_eq(l, "ok echo from b: hello over the wire");
    tu_proc_send(&b, "ask echo@a and back");
    cr_assert_not_null(tu_proc_expect(&b, "ok echo from a: and back", 5000), "%s", b.log);
    tu_proc_send(&a, "tell echo@b fire and forget");
    cr_assert_not_null(tu_proc_expect(&a, "sent", 5000), "%s", a.log);
    tu_proc_send(&a, "ask nobody@b x");
    l = tu_proc_expect(&a, "fail", 5000);
    cr_assert(l && strstr(l, "WF_ENOSUCHACTOR"), "%s", a.log);
}

Test(cluster, a_failure_crosses_two_hops_with_its_whole_trace, .init = setup, .fini = teardown)
{
    pair();
    /* a asks relay@b, which asks fail@a: the failure crosses the wire twice. */
    tu_proc_send(&a, "ask relay@b fail@a deep");
    cr_assert_not_null(tu_proc_expect(&a, "fail WF_EUSER: a refuses: deep", 5000), "%s", a.log);
    const char *want[] = {"raised at tools/node/weft_node.c", "handler fail [fail@a]",
                          "reply from node a [node b]", "handler relay [relay@b]",
                          "reply from node b [node a]"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(tu_proc_expect(&a, want[i], 2000), "missing '%s' in:\n%s", want[i],
                           a.log);
}

Test(cluster, a_node_killed_mid_ask_fails_the_ask_at_once_and_comes_back, .init = setup,
     .fini = teardown)
{
    const char *slow[] = {"--timeout", "30000", NULL};
    start_node(&b, "b", url("b"), NULL, "s3cret", NULL);
    start_node(&a, "a", url("a"), url("b"), "s3cret", slow);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s", a.log);
    tu_proc_send(&a, "ask slow@b 20000");
    tu_sleep_ms(200);
    long long t0 = now_ms();
    tu_proc_kill(&b);
    const char *l = tu_proc_expect(&a, "fail WF_ENODEDOWN", 5000);
    long long took = now_ms() - t0;
    cr_assert_not_null(l, "%s", a.log);
    cr_assert_lt(took, 3000, "NodeDown took %lld ms, not at once", took);

    /* b comes back; a's dialer reconnects; traffic resumes. a was never
     * restarted. */
    start_node(&b, "b", url("b"), NULL, "s3cret", NULL);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 10000), "%s", a.log);
    tu_proc_send(&a, "ask echo@b again");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: again", 5000), "%s", a.log);
}

/* Connects to url as a raw byte stream and writes len bytes. */
static void stranger_sends(const char *to, const void *bytes, size_t len)
{
    nng_stream_dialer *d;
    nng_aio *aio;
    cr_assert_eq(nng_stream_dialer_alloc(&d, to), 0);
    cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
    nng_aio_set_timeout(aio, 5000);
    nng_stream_dialer_dial(d, aio);
    nng_aio_wait(aio);
    cr_assert_eq(nng_aio_result(aio), 0);
    nng_stream *s = nng_aio_get_output(aio, 0);
    nng_iov iov = {(void *)bytes, len};
    nng_aio_set_iov(aio, 1, &iov);
    nng_stream_send(s, aio);
    nng_aio_wait(aio);
    tu_sleep_ms(100);
    nng_stream_free(s);
    nng_aio_free(aio);
    nng_stream_dialer_free(d);
}

Test(cluster, a_stranger_sending_frames_is_refused_and_logged, .init = setup, .fini = teardown)
{
    pair();
    stranger_sends(url("a"), "hello, I am not weft\n", 21);
    cr_assert_not_null(tu_proc_expect(&a, "refused: not speaking weft", 5000), "%s", a.log);
    /* A well-formed TELL that skips the handshake. */
    unsigned char frame[WF_WIRE_HEADER + 4] = {'W', 'F', WF_WIRE_VERSION, WF_WIRE_TELL};
    frame[71] = 4;
    memcpy(frame + WF_WIRE_HEADER, "evil", 4);
    stranger_sends(url("a"), frame, sizeof frame);
    cr_assert_not_null(tu_proc_expect(&a, "refused: frame before the handshake", 5000), "%s",
                       a.log);
    /* A huge frame announced by a stranger is not buffered. */
    unsigned char big[WF_WIRE_HEADER] = {'W', 'F', WF_WIRE_VERSION, WF_WIRE_TELL};
    big[68] = 0x7f;
    stranger_sends(url("a"), big, sizeof big);
    cr_assert_not_null(tu_proc_expect(&a, "refused: oversized frame", 5000), "%s", a.log);
    /* Nothing else was disturbed. */
    tu_proc_send(&a, "ask echo@b still here");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: still here", 5000), "%s", a.log);
    tu_proc_send(&a, "stats");
    const char *l = tu_proc_expect(&a, "stats ", 5000);
    cr_assert(l && strstr(l, "auth_failures=3"), "%s", l ? l : a.log);
}

Test(cluster, a_peer_without_the_secret_is_refused, .init = setup, .fini = teardown)
{
    pair();
    start_node(&c, "c", url("c"), url("a"), "wrong-secret", NULL);
    const char *why = tu_proc_expect(&a, "wrong proof of the cluster secret", 5000);
    cr_assert_not_null(why, "%s", a.log);
    /* The refusal says where it came from and who it claimed to be. */
    cr_assert(strstr(why, "connection from ipc://") && strstr(why, "claiming to be node c"), "%s",
              why);
    tu_proc_send(&c, "ask echo@a let me in");
    const char *l = tu_proc_expect(&c, "fail", 5000);
    cr_assert(l && strstr(l, "WF_ENOSUCHACTOR"), "c reached a: %s", c.log);
    tu_proc_send(&a, "peers");
    cr_assert_not_null(tu_proc_expect(&a, "peers b", 5000), "%s", a.log);
}

static int count_lines(const char *log, const char *needle)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A node misconfigured elsewhere redials every few seconds, forever: its
 * refusal is logged once, the repeats counted (and summed up later). */
Test(cluster, a_refusal_that_repeats_is_logged_once_and_counted, .init = setup, .fini = teardown)
{
    pair();
    start_node(&c, "c", url("c"), url("a"), "wrong-secret", NULL);
    cr_assert_not_null(tu_proc_expect(&a, "wrong proof of the cluster secret", 5000), "%s", a.log);
    unsigned long long failures = 0;
    for (int i = 0; i < 60 && failures < 3; i++) {
        tu_sleep_ms(100);
        tu_proc_send(&a, "stats");
        const char *l = tu_proc_expect(&a, "stats frames_in=", 2000);
        const char *f = l ? strstr(l, "auth_failures=") : NULL;
        failures = f ? strtoull(f + 14, NULL, 10) : 0;
    }
    cr_assert_geq(failures, 3, "c redialled: %s", a.log);
    cr_assert_eq(count_lines(a.log, "wrong proof of the cluster secret"), 1, "%s", a.log);
}

Test(cluster, over_tls, .init = setup, .fini = teardown)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
             "-keyout key.pem -out cert.pem >/dev/null 2>&1 && cat cert.pem key.pem > both.pem",
             dir);
    cr_assert_eq(system(cmd), 0, "openssl could not make a certificate");
    char pem[300], ca[300], lurl[64], durl[64];
    snprintf(pem, sizeof pem, "%s/both.pem", dir);
    snprintf(ca, sizeof ca, "%s/cert.pem", dir);
    snprintf(lurl, sizeof lurl, "tls+tcp://127.0.0.1:%d", tu_free_port());
    snprintf(durl, sizeof durl, "tls+tcp://127.0.0.1:%d", tu_free_port());
    const char *tls[] = {"--tls-cert-key",    pem,         "--tls-ca", ca,
                         "--tls-server-name", "localhost", NULL};
    start_node(&b, "b", lurl, NULL, "s3cret", tls);
    start_node(&a, "a", durl, lurl, "s3cret", tls);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 10000), "%s\n---\n%s", a.log, b.log);
    tu_proc_send(&a, "ask echo@b encrypted");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: encrypted", 5000), "%s", a.log);
}

/* A CA in dir (ca.pem) and, for each name, a certificate it signed made
 * out to that name, with its key (NAME.pem). */
static void make_certs(const char *const *names)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=weft-test-ca -keyout ca.key -out ca.pem >/dev/null 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "openssl could not make a CA");
    for (; *names; names++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-subj /CN=%s -keyout %s.key -out %s.csr >/dev/null 2>&1 && openssl x509 -req "
                 "-in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out %s.crt "
                 ">/dev/null 2>&1 && cat %s.crt %s.key > %s.pem",
                 dir, *names, *names, *names, *names, *names, *names, *names, *names);
        cr_assert_eq(system(cmd), 0, "openssl could not make %s's certificate", *names);
    }
}

/* dir/tls.conf: nodes a and b over TLS, a CA, and the name b's certificate
 * carries (expect_b); each node gives its own certificate on its command
 * line. Returns the file's path. */
static const char *tls_file(const char *expect_b)
{
    static char conf[300];
    snprintf(conf, sizeof conf, "%s/tls.conf", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "secret = s3cret\nnode a = tls+tcp://127.0.0.1:%d\nnode b = tls+tcp://127.0.0.1:%d\n"
            "tls-ca = %s/ca.pem\ntls-name a = a\ntimeout = 4000\n",
            tu_free_port(), tu_free_port(), dir);
    if (expect_b != NULL)
        fprintf(f, "tls-name b = %s\n", expect_b);
    fclose(f);
    return conf;
}

static void start_tls_node(tu_proc *p, const char *conf, const char *name, const char *pem)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, pem);
    const char *argv[] = {WEFT_NODE, "--config",       conf, "--name",
                          name,      "--tls-cert-key", path, NULL};
    tu_proc_start(p, (char *const *)(pem ? argv
                                         : (const char *[]){WEFT_NODE, "--config", conf, "--name",
                                                            name, NULL}));
    cr_assert_not_null(tu_proc_expect(p, "ready", 5000), "%s did not start:\n%s", name, p->log);
}

Test(cluster, mutual_tls_with_a_certificate_per_node_from_the_cluster_file, .init = setup,
     .fini = teardown)
{
    make_certs((const char *[]){"a", "b", NULL});
    const char *conf = tls_file("b");
    start_tls_node(&b, conf, "b", "b.pem");
    start_tls_node(&a, conf, "a", "a.pem");
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 10000), "%s\n---\n%s", a.log, b.log);
    tu_proc_send(&a, "ask echo@b over-mutual-tls");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: over-mutual-tls", 5000), "%s", a.log);
}

Test(cluster, a_node_without_a_client_certificate_is_refused_and_both_sides_say_why, .init = setup,
     .fini = teardown)
{
    make_certs((const char *[]){"b", NULL});
    const char *conf = tls_file("b");
    start_tls_node(&b, conf, "b", "b.pem");
    start_tls_node(&a, conf, "a", NULL); /* the CA, but no certificate of its own */
    const char *l = tu_proc_expect(&b, "TLS with the connection from 127.0.0.1:", 10000);
    cr_assert(l && strstr(l, "sent no certificate"), "%s", b.log);
    l = tu_proc_expect(&a, "closed the connection during TLS", 5000);
    cr_assert(l && strstr(l, "tls+tcp://127.0.0.1:"), "%s", a.log);
    /* Never up: an ask waits for it (a node starting may come late), and
     * fails within the file's timeout (4000 ms). */
    tu_proc_send(&a, "ask echo@b hello");
    l = tu_proc_expect(&a, "fail WF_", 8000);
    cr_assert(l && strstr(l, "echo@b"), "%s", a.log);
    cr_assert_null(strstr(b.log, "peer a up"), "%s", b.log);
}

Test(cluster, a_certificate_made_out_to_another_name_is_refused_and_logged, .init = setup,
     .fini = teardown)
{
    make_certs((const char *[]){"a", "b", NULL});
    const char *conf = tls_file("b.weft.example"); /* b's certificate says "b" */
    start_tls_node(&b, conf, "b", "b.pem");
    start_tls_node(&a, conf, "a", "a.pem");
    const char *l = tu_proc_expect(&a, "TLS with tls+tcp://127.0.0.1:", 10000);
    cr_assert(l && strstr(l, "made out to b.weft.example"), "%s", a.log);
    cr_assert_not_null(tu_proc_expect(&b, "TLS with the connection from 127.0.0.1:", 5000), "%s",
                       b.log);
    cr_assert_null(strstr(a.log, "peer b up"), "%s", a.log);
}

Test(cluster, without_a_name_the_listeners_certificate_must_carry_the_urls_host, .init = setup,
     .fini = teardown)
{
    make_certs((const char *[]){"a", "b", NULL});
    const char *conf = tls_file(NULL); /* b's certificate says "b", its URL 127.0.0.1 */
    start_tls_node(&b, conf, "b", "b.pem");
    start_tls_node(&a, conf, "a", "a.pem");
    const char *l = tu_proc_expect(&a, "TLS with tls+tcp://127.0.0.1:", 10000);
    cr_assert(l && strstr(l, "made out to 127.0.0.1"), "%s", a.log);
}

/* systemctl stop sends SIGTERM: the node shuts down cleanly, and its peer
 * hears of it at once. */
Test(cluster, sigterm_shuts_a_node_down_cleanly, .init = setup, .fini = teardown)
{
    pair();
    kill(b.pid, SIGTERM);
    cr_assert_not_null(tu_proc_expect(&b, "node b: SIGTERM: shutting down", 5000), "%s", b.log);
    cr_assert_not_null(tu_proc_expect(&a, "peer b down", 5000), "%s", a.log);
    int status = tu_proc_stop(&b);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, b.log);
}

Test(cluster, dialling_tls_without_a_ca_is_refused_saying_why, .init = setup, .fini = teardown)
{
    char durl[64];
    snprintf(durl, sizeof durl, "tls+tcp://127.0.0.1:%d", tu_free_port());
    const char *argv[] = {WEFT_NODE, "--name", "a", "--secret", "s", "--peer", durl, NULL};
    tu_proc_start(&a, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(&a, "tls+tcp needs tls_ca", 5000), "%s", a.log);
}

/* Writes dir/cluster.conf naming nodes a and b (a runs echo; b echo and
 * relay) and its secret file; returns the file's path. */
static const char *cluster_file(void)
{
    static char conf[300];
    snprintf(conf, sizeof conf, "%s/cluster.conf", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "# test cluster\nsecret-file = %s/secret\nnode a = %s\nnode b = %s\n"
            "actors a = echo\nactors b = echo relay\n",
            dir, url("a"), url("b"));
    fclose(f);
    char secret[300];
    snprintf(secret, sizeof secret, "%s/secret", dir);
    f = fopen(secret, "w");
    fputs("from-a-file\n", f);
    fclose(f);
    return conf;
}

/* Starts node name of the cluster file conf, with the extra arguments. */
static void start_from_file(tu_proc *p, const char *conf, const char *name,
                            const char *const *extra)
{
    const char *argv[16] = {WEFT_NODE, "--config", conf, "--name", name};
    int n = 5;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_proc_start(p, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(p, "ready", 5000), "%s did not start:\n%s", name, p->log);
}

Test(cluster, two_nodes_from_one_cluster_file, .init = setup, .fini = teardown)
{
    const char *conf = cluster_file();
    start_from_file(&b, conf, "b", NULL);
    start_from_file(&a, conf, "a", NULL);
    /* Each side sees the other: a can be up a moment before b is. */
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s\n%s", a.log, b.log);
    cr_assert_not_null(tu_proc_expect(&b, "peer a up", 5000), "%s\n%s", a.log, b.log);
    tu_proc_send(&b, "ask relay@b echo@a through the file");
    cr_assert_not_null(tu_proc_expect(&b, "ok echo from a: through the file", 5000), "%s", b.log);
    tu_proc_send(&a, "ask fail@a x");
    cr_assert_not_null(tu_proc_expect(&a, "no actor fail@a on this node", 5000),
                       "a runs only echo: %s", a.log);
}

/* A second process calling itself b, while b is up: refused and logged,
 * and b keeps its traffic. */
Test(cluster, a_second_node_with_a_name_in_use_is_refused, .init = setup, .fini = teardown)
{
    const char *conf = cluster_file();
    start_from_file(&b, conf, "b", NULL);
    start_from_file(&a, conf, "a", NULL);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s", a.log);
    start_node(&c, "b", url("b2"), url("a"), "from-a-file", NULL);
    const char *l = tu_proc_expect(&a, "is connected already", 5000);
    cr_assert(l && strstr(l, "claiming to be node b"), "%s", a.log);
    tu_proc_send(&a, "stats");
    cr_assert_not_null(tu_proc_expect(&a, "peers_up=1 ", 5000), "%s", a.log);
    tu_proc_send(&a, "ask echo@b still you");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: still you", 5000), "%s", a.log);
}

Test(cluster, an_ask_to_a_named_node_waits_for_it_to_connect, .init = setup, .fini = teardown)
{
    const char *conf = cluster_file();
    start_from_file(&b, conf, "b", NULL);
    /* a does not exist yet: b's relay asks echo@a all the same. */
    tu_proc_send(&b, "ask relay@b echo@a before a was there");
    tu_proc_send(&b, "peers"); /* answered after the ask was made */
    cr_assert_not_null(tu_proc_expect(&b, "peers", 5000), "%s", b.log);
    start_from_file(&a, conf, "a", NULL);
    const char *l = tu_proc_expect(&b, "ok echo from a: before a was there", 5000);
    cr_assert_not_null(l, "the ask did not wait for a:\n%s\n---\n%s", b.log, a.log);
}

Test(cluster, an_ask_to_a_named_node_that_never_comes_fails_as_node_down, .init = setup,
     .fini = teardown)
{
    const char *conf = cluster_file();
    const char *quick[] = {"--connect-wait", "300", NULL};
    start_from_file(&b, conf, "b", quick);
    long long t0 = now_ms();
    tu_proc_send(&b, "ask echo@a nobody home");
    const char *l = tu_proc_expect(&b, "fail ", 4000);
    long long took = now_ms() - t0;
    cr_assert(l && strstr(l, "fail WF_ENODEDOWN") && strstr(l, "node a"), "%s", b.log);
    cr_assert_geq(took, 250, "failed after %lld ms, before the wait", took);
    /* b is still fine, and a, once there, is reached. */
    start_from_file(&a, conf, "a", NULL);
    cr_assert_not_null(tu_proc_expect(&b, "peer a up", 5000), "%s", b.log);
    tu_proc_send(&b, "ask echo@a at last");
    cr_assert_not_null(tu_proc_expect(&b, "ok echo from a: at last", 5000), "%s", b.log);
}

Test(cluster, a_node_at_a_named_url_that_is_another_node_is_refused, .init = setup,
     .fini = teardown)
{
    /* The file says b is at c's URL; c answers there. */
    char conf[300];
    snprintf(conf, sizeof conf, "%s/wrong.conf", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "secret = s3cret\nnode a = %s\nnode b = %s\n", url("a"), url("c"));
    fclose(f);
    start_node(&c, "c", url("c"), NULL, "s3cret", NULL);
    start_from_file(&a, conf, "a", NULL);
    cr_assert_not_null(
        tu_proc_expect(&a, "the node dialled is not the one named for its URL", 5000), "%s", a.log);
    tu_proc_send(&a, "peers");
    const char *l = tu_proc_expect(&a, "peers", 5000);
    /* c answered as itself at b's URL: a has no peer at all (taking c
     * would list it under the name b). */
    cr_assert(l && strncmp(l, "peers", 5) == 0 && strspn(l + 5, "\r\n") == strlen(l + 5),
              "a took c for b: %s", a.log);
}

Test(cluster, a_remote_ask_that_times_out_names_the_remote_actor, .init = setup, .fini = teardown)
{
    const char *quick[] = {"--timeout", "300", NULL};
    start_node(&b, "b", url("b"), NULL, "s3cret", NULL);
    start_node(&a, "a", url("a"), url("b"), "s3cret", quick);
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s", a.log);
    tu_proc_send(&a, "ask slow@b 3000");
    const char *l = tu_proc_expect(&a, "fail WF_ETIMEDOUT", 5000);
    cr_assert(l && strstr(l, "to slow@b timed out after 300 ms"), "%s", a.log);
}

/* Commands from a file (weft-node < commands, or < /dev/null) are read to
 * the end and the node stops cleanly: epoll cannot watch a file, so reading
 * it as a pipe made libuv abort. */
Test(cluster, commands_from_a_file_are_read_to_the_end, .init = setup, .fini = teardown)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --name a --secret s < /dev/null > %s/null.out 2>&1", WEFT_NODE,
             dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "weft-node < /dev/null ended with %d", st);
    snprintf(cmd, sizeof cmd,
             "printf 'peers\\nquit\\n' > %s/cmds && %s --name a --secret s < %s/cmds > %s/file.out "
             "2>&1 && grep -q '^peers' %s/file.out",
             dir, WEFT_NODE, dir, dir, dir);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "weft-node < file ended with %d", st);
}
