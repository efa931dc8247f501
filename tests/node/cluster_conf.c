/* The cluster file parser of weft-node (tools/node/cluster_conf.c): what it
 * reads, and that every mistake is named as FILE:LINE: problem instead of
 * being read in part. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cluster_conf.h"

TestSuite(cluster_conf, .timeout = 10);

static int parse(const char *text, const char *self, wf__cluster_conf *c, char *err)
{
    return wf__cluster_conf_parse(text, strlen(text), "c.conf", self, c, err, 256);
}

Test(cluster_conf, reads_urls_peers_actors_and_the_secret)
{
    wf__cluster_conf c;
    char err[256] = "";
    const char *text = "# cluster\n\nsecret = s3\nnode a = tcp://127.0.0.1:1\n"
                       "node b = tcp://127.0.0.1:2\n  node c = ipc:///tmp/c  \n"
                       "actors b = echo relay\nactors c = fail\n";
    cr_assert_eq(parse(text, "b", &c, err), 0, "%s", err);
    cr_assert_eq(c.nlisten, 1);
    cr_assert_str_eq(c.listen[0], "tcp://127.0.0.1:2");
    cr_assert_eq(c.npeer, 2);
    cr_assert_str_eq(c.peer_name[0], "a");
    cr_assert_null(c.peer_url[0], "a sorts before b: a dials b");
    cr_assert_str_eq(c.peer_name[1], "c");
    cr_assert_str_eq(c.peer_url[1], "ipc:///tmp/c");
    cr_assert_str_eq(c.actors, "echo relay");
    cr_assert(c.has_actors);
    cr_assert_str_eq(c.secret, "s3");
    cr_assert_str_eq(c.secret_file, "");
    wf__cluster_conf_free(&c);
}

Test(cluster_conf, reads_the_heartbeat_and_the_peer_timeout)
{
    wf__cluster_conf c;
    char err[256] = "";
    cr_assert_eq(parse("secret = s\nheartbeat = 250\npeer-timeout = 2000\n", "a", &c, err), 0, "%s",
                 err);
    cr_assert_eq(c.heartbeat_ms, 250);
    cr_assert_eq(c.peer_timeout_ms, 2000);
    wf__cluster_conf_free(&c);
    cr_assert_eq(parse("secret = s\n", "a", &c, err), 0, "%s", err);
    cr_assert_eq(c.heartbeat_ms + c.peer_timeout_ms, 0, "the transport's defaults");
    wf__cluster_conf_free(&c);
}

Test(cluster_conf, reads_the_tls_settings_and_the_timeouts)
{
    wf__cluster_conf c;
    char err[256] = "";
    const char *text = "secret = s\nnode a = tls+tcp://10.0.0.1:7100\n"
                       "node b = tls+tcp://10.0.0.2:7100\nnode c = tls+tcp://10.0.0.3:7100\n"
                       "tls-cert-key = /etc/weft/node.pem\ntls-ca = /etc/weft/ca.pem\n"
                       "tls-server-name = weft.example\ntls-name b = b.weft.example\n"
                       "timeout = 2500\nconnect-wait = 8000\n";
    cr_assert_eq(parse(text, "a", &c, err), 0, "%s", err);
    cr_assert_str_eq(c.tls_cert_key, "/etc/weft/node.pem");
    cr_assert_str_eq(c.tls_ca, "/etc/weft/ca.pem");
    cr_assert_str_eq(wf__cluster_tls_name(&c, "b"), "b.weft.example");
    cr_assert_str_eq(wf__cluster_tls_name(&c, "c"), "weft.example", "the common name");
    cr_assert_eq(c.timeout_ms, 2500);
    cr_assert_eq(c.connect_wait_ms, 8000);
    wf__cluster_conf_free(&c);
    cr_assert_eq(parse("secret = s\n", "a", &c, err), 0, "%s", err);
    cr_assert_null(wf__cluster_tls_name(&c, "b"), "no name: the URL's host");
    wf__cluster_conf_free(&c);
}

/* The example for real machines is a file every one of its nodes reads. */
Test(cluster_conf, the_example_for_four_hosts_is_valid_for_each_node)
{
    FILE *f = fopen(EXAMPLES "/cluster-proxy.conf", "r");
    cr_assert_not_null(f);
    static char text[1 << 14];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    static const char *nodes[] = {"front", "cache", "fetch"};
    for (int i = 0; i < 3; i++) {
        wf__cluster_conf c;
        char err[256] = "";
        cr_assert_eq(
            wf__cluster_conf_parse(text, len, "cluster-proxy.conf", nodes[i], &c, err, sizeof err),
            0, "%s", err);
        cr_assert_eq(c.nlisten, 1, "%s has its URL", nodes[i]);
        cr_assert_str_eq(c.tls_ca, "/etc/weft/ca.pem");
        for (int k = 0; k < c.npeer; k++)
            cr_assert_str_eq(wf__cluster_tls_name(&c, c.peer_name[k]), c.peer_name[k]);
        wf__cluster_conf_free(&c);
    }
}

Test(cluster_conf, reads_where_the_standard_actors_run_and_their_options)
{
    wf__cluster_conf c;
    char err[256] = "";
    const char *text = "actors front = listener renderer\nactors store = cache\n"
                       "actors fetch = fetcher echo\nfetcher.upstream = poetry://h:1\n"
                       "listener.debug = yes\ncache.ttl-ms = 60000\n";
    cr_assert_eq(parse(text, "store", &c, err), 0, "%s", err);
    cr_assert_str_eq(c.runs_on[wf__cluster_std_actor("listener")], "front");
    cr_assert_str_eq(c.runs_on[wf__cluster_std_actor("cache")], "store");
    cr_assert_str_eq(c.runs_on[wf__cluster_std_actor("fetcher")], "fetch");
    cr_assert_null(c.runs_on[wf__cluster_std_actor("transformer")]);
    cr_assert_str_eq(c.actors, "cache");
    cr_assert_str_eq(wf__cluster_opt_get(&c, wf__cluster_std_actor("fetcher"), "upstream"),
                     "poetry://h:1");
    cr_assert_str_eq(wf__cluster_opt_get(&c, wf__cluster_std_actor("cache"), "ttl-ms"), "60000");
    cr_assert_null(wf__cluster_opt_get(&c, wf__cluster_std_actor("cache"), "source"));
    wf__cluster_conf_free(&c);
}

Test(cluster_conf, the_first_secret_line_counts)
{
    wf__cluster_conf c;
    char err[256] = "";
    cr_assert_eq(parse("secret-file = /s\nsecret = x\n", "a", &c, err), 0, "%s", err);
    cr_assert_str_eq(c.secret_file, "/s");
    cr_assert_str_eq(c.secret, "");
    wf__cluster_conf_free(&c);
}

/* Each bad file, and the error it must give. */
static const struct {
    const char *text, *err;
} bad[] = {
    {"secret = x\nfoo = 1\n", "c.conf:2: unknown key"},
    {"\n\nno equals\n", "c.conf:3: expected KEY = VALUE"},
    {"node = tcp://x\n", "c.conf:1: a node name is missing"},
    {"node b c = tcp://x\n", "c.conf:1: a node name has no spaces"},
    {"node b = tcp://x\nnode b = tcp://y\n", "c.conf:2: node named twice"},
    {"node b =\n", "c.conf:1: node without a URL"},
    {"secret =   \n", "c.conf:1: empty secret"},
    {"secret a = x\n", "c.conf:1: secret and secret-file take no node name"},
    {"heartbeat = 0\n", "c.conf:1: a time in milliseconds, 1 to 3600000"},
    {"heartbeat = 5s\n", "c.conf:1: a time in milliseconds"},
    {"peer-timeout = 99999999\n", "c.conf:1: a time in milliseconds"},
    {"peer-timeout = -1\n", "c.conf:1: a time in milliseconds"},
    {"heartbeat a = 100\n", "c.conf:1: heartbeat, peer-timeout, connect-wait and timeout take"},
    {"timeout = 0\n", "c.conf:1: a time in milliseconds"},
    {"connect-wait = x\n", "c.conf:1: a time in milliseconds"},
    {"tls-ca a = /x\n", "c.conf:1: tls-cert-key, tls-ca and tls-server-name take no node name"},
    {"tls-name = b.example\n", "c.conf:1: tls-name needs a node name"},
    {"tls-ca = /x\ntls-ca = /y\n", "c.conf:2: a TLS setting given twice"},
    {"tls-name b = x\ntls-name b = y\n", "c.conf:2: tls-name set twice for a node"},
    {"tls-ca = /a b\n", "c.conf:1: a TLS setting has no spaces"},
    {"tls-server-name =\n", "c.conf:1: an empty TLS setting"},
    {"tls-key = /x\n", "c.conf:1: unknown key"},
    {"node a = tcp://x\ntls-name a = a\ntls-name b = b\nnode c = tcp://y\n",
     "c.conf:3: tls-name for a node the file does not name"},
    {"heartbeat = 500\n\npeer-timeout = 500\n", "c.conf:3: peer-timeout must be longer"},
    {"cache.ttl = 5\n", "c.conf:1: cache has no option ttl (it has: source ttl-ms"},
    {"cashe.ttl-ms = 5\n", "c.conf:1: unknown actor in ACTOR.OPTION"},
    {".x = 5\n", "c.conf:1: unknown actor in ACTOR.OPTION"},
    {"cache.ttl-ms = 0\n", "c.conf:1: a whole number from 1"},
    {"cache.ttl-ms = 99999999999\n", "c.conf:1: a whole number from 1"},
    {"fetcher.send-name = 1\n", "c.conf:1: yes or no wanted"},
    {"fetcher.upstream = a b\n", "c.conf:1: an address has no spaces"},
    {"fetcher.upstream =\n", "c.conf:1: an option without a value"},
    {"cache.ttl-ms = 5\ncache.ttl-ms = 6\n", "c.conf:2: option set twice"},
    {"cache a.ttl-ms = 5\n", "c.conf:1: unknown key"},
    {"actors a = cache\nactors b = cache\n", "c.conf:2: a standard actor runs on one node only"},
    {"actors a = echo nosuch\n", "c.conf:1: unknown actor"},
    {"actors a = echo\nactors a = fail\n", "c.conf:2: actors named twice for this node"},
};

Test(cluster_conf, a_mistake_names_its_file_and_line)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wf__cluster_conf c;
        char err[256] = "";
        cr_assert_eq(parse(bad[i].text, "a", &c, err), -1, "accepted: %s", bad[i].text);
        cr_assert(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0, "%s: got '%s'", bad[i].err,
                  err);
        cr_assert_eq(c.npeer + c.nlisten, 0);
    }
}

/* Before the extraction, a line over 1023 bytes was read as two lines (the
 * second a stray "KEY = VALUE"), and a 17th URL or a long secret was
 * dropped or cut without a word. */
Test(cluster_conf, nothing_is_cut_silently)
{
    wf__cluster_conf c;
    char err[256] = "", text[4096];
    int n = snprintf(text, sizeof text, "node b = tcp://");
    memset(text + n, 'x', 1100);
    strcpy(text + n + 1100, "\n");
    cr_assert_eq(parse(text, "a", &c, err), -1);
    cr_assert_str_eq(err, "c.conf:1: line longer than 1023 bytes");

    n = 0;
    for (int i = 0; i < 17; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "node a = tcp://127.0.0.1:%d\n", 7000 + i);
    cr_assert_eq(parse(text, "a", &c, err), -1);
    cr_assert_str_eq(err, "c.conf:17: more than 16 URLs for this node");

    n = snprintf(text, sizeof text, "secret = ");
    memset(text + n, 's', 300);
    text[n + 300] = '\0';
    cr_assert_eq(parse(text, "a", &c, err), -1);
    cr_assert_str_eq(err, "c.conf:1: secret longer than 255 bytes");

    char nul[] = "secret = a\0b\n";
    cr_assert_eq(wf__cluster_conf_parse(nul, sizeof nul - 1, "c.conf", "a", &c, err, sizeof err),
                 -1);
    cr_assert_str_eq(err, "c.conf:1: NUL byte in the line");
}
