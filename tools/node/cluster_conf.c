/* The cluster file (see cluster_conf.h): one line at a time, each trimmed;
 * a line that is not a comment is "KEY [WHO] = VALUE". Whatever the bytes,
 * the parse either fills the configuration or says which line is wrong:
 * nothing is cut silently (a long line, a NUL, more nodes than fit). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_conf.h"

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Copies s into buf[0..size), or returns false if it does not fit. */
static bool copy_fits(char *buf, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        return false;
    memcpy(buf, s, n + 1);
    return true;
}

const char *const wf__cluster_std_actors[WF__CLUSTER_STD_ACTORS] = {"listener", "cache", "fetcher",
                                                                    "renderer", "transformer"};

static const char *const demo_actors[] = {"echo", "fail", "slow", "relay"};

/* The options of the standard actors: kind 'u' a whole number (1 to
 * 2^32-1), 'b' yes or no, 'a' an address or URL (no spaces). */
static const struct {
    int actor;
    const char *name;
    char kind;
} options[] = {
    {0, "http", 'a'},
    {0, "poetry", 'a'},
    {0, "transform-port", 'a'},
    {0, "poetry-default", 'a'},
    {0, "cache", 'a'},
    {0, "renderer", 'a'},
    {0, "transformer", 'a'},
    {0, "deadline-ms", 'u'},
    {0, "max-connections", 'u'},
    {0, "fin-abandons", 'b'},
    {0, "debug", 'b'},
    {0, "trace-control", 'b'},
    {1, "source", 'a'},
    {1, "ttl-ms", 'u'},
    {1, "negative-ttl-ms", 'u'},
    {1, "stale-if-error-ms", 'u'},
    {1, "stale-while-revalidate-ms", 'u'},
    {1, "fetch-timeout-ms", 'u'},
    {2, "upstream", 'a'},
    {2, "send-name", 'b'},
    {2, "connect-timeout-ms", 'u'},
    {2, "idle-timeout-ms", 'u'},
    {2, "total-timeout-ms", 'u'},
    {2, "max-connections", 'u'},
    {3, "templates", 'a'},
    {4, "upstream", 'a'},
    {4, "total-timeout-ms", 'u'},
};

int wf__cluster_std_actor(const char *name)
{
    for (int i = 0; i < WF__CLUSTER_STD_ACTORS; i++)
        if (strcmp(wf__cluster_std_actors[i], name) == 0)
            return i;
    return -1;
}

const char *wf__cluster_opt_get(const wf__cluster_conf *c, int actor, const char *name)
{
    for (int i = 0; i < c->nopt; i++)
        if (c->opt[i].actor == actor && strcmp(c->opt[i].name, name) == 0)
            return c->opt[i].value;
    return NULL;
}

void wf__cluster_opt_names(int actor, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (options[i].actor == actor && n < size)
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? " " : "", options[i].name);
}

/* KEY = value where KEY is ACTOR.OPTION (key has a '.'). scratch (of
 * size 400) may hold the problem returned. */
/* value as a whole number from lo to hi (decimal digits only) into *out;
 * false if it is not one. */
static bool whole_number(const char *value, unsigned long long lo, unsigned long long hi,
                         unsigned long long *out)
{
    size_t digits = strspn(value, "0123456789");
    if (digits == 0 || value[digits] != '\0' || digits > 19)
        return false;
    *out = strtoull(value, NULL, 10);
    return *out >= lo && *out <= hi;
}

static const char *parse_option(const char *key, const char *value, wf__cluster_conf *c,
                                char *scratch)
{
    const char *dot = strchr(key, '.');
    char actor[32];
    size_t an = (size_t)(dot - key);
    if (an == 0 || an >= sizeof actor)
        return "unknown actor in ACTOR.OPTION (listener, cache, fetcher, renderer, "
               "transformer)";
    memcpy(actor, key, an);
    actor[an] = '\0';
    int a = wf__cluster_std_actor(actor);
    if (a < 0)
        return "unknown actor in ACTOR.OPTION (listener, cache, fetcher, renderer, "
               "transformer)";
    size_t i = 0;
    while (i < sizeof options / sizeof options[0] &&
           (options[i].actor != a || strcmp(options[i].name, dot + 1) != 0))
        i++;
    if (i == sizeof options / sizeof options[0]) {
        char names[300];
        wf__cluster_opt_names(a, names, sizeof names);
        snprintf(scratch, 400, "%s has no option %.40s (it has: %s)", actor, dot + 1, names);
        return scratch;
    }
    if (*value == '\0')
        return "an option without a value";
    unsigned long long n;
    if (options[i].kind == 'u') {
        if (!whole_number(value, 1, 4294967295ull, &n))
            return "a whole number from 1 to 4294967295 wanted";
    } else if (options[i].kind == 'b') {
        if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
            return "yes or no wanted";
    } else if (value[strcspn(value, " \t")] != '\0') {
        return "an address has no spaces";
    }
    if (wf__cluster_opt_get(c, a, options[i].name) != NULL)
        return "option set twice";
    if (c->nopt == WF__CLUSTER_MAX_OPTS)
        return "more than 64 options";
    char *v = strdup(value);
    if (v == NULL)
        return "out of memory";
    c->opt[c->nopt++] = (struct wf__cluster_opt){.actor = a, .name = options[i].name, .value = v};
    return NULL;
}

/* An actors line, for node who (self is this node): each name must be an
 * actor weft-node has, and a standard one may run on one node only. */
static const char *parse_actors(const char *who, const char *self, const char *value,
                                wf__cluster_conf *c)
{
    char list[512];
    if (!copy_fits(list, sizeof list, value))
        return "actors list longer than 511 bytes";
    for (char *save = NULL, *k = strtok_r(list, " \t", &save); k != NULL;
         k = strtok_r(NULL, " \t", &save)) {
        int a = wf__cluster_std_actor(k);
        bool demo = false;
        for (size_t i = 0; i < sizeof demo_actors / sizeof demo_actors[0]; i++)
            demo = demo || strcmp(demo_actors[i], k) == 0;
        if (a < 0 && !demo)
            return "unknown actor (have listener, cache, fetcher, renderer, transformer, echo, "
                   "fail, slow, relay)";
        if (a >= 0) {
            if (c->runs_on[a] != NULL && strcmp(c->runs_on[a], who) != 0)
                return "a standard actor runs on one node only";
            if (c->runs_on[a] == NULL && (c->runs_on[a] = strdup(who)) == NULL)
                return "out of memory";
        }
    }
    if (strcmp(who, self) == 0) {
        if (c->has_actors)
            return "actors named twice for this node";
        snprintf(c->actors, sizeof c->actors, "%s", value);
        c->has_actors = 1;
    }
    return NULL;
}

void wf__cluster_conf_free(wf__cluster_conf *c)
{
    for (int i = 0; i < WF__CLUSTER_STD_ACTORS; i++)
        free(c->runs_on[i]);
    for (int i = 0; i < c->nopt; i++)
        free(c->opt[i].value);
    for (int i = 0; i < c->nlisten; i++)
        free(c->listen[i]);
    for (int i = 0; i < c->npeer; i++) {
        free(c->peer_name[i]);
        free(c->peer_url[i]);
    }
    for (int i = 0; i < c->ntls_name; i++) {
        free(c->tls_name_node[i]);
        free(c->tls_name[i]);
    }
    memset(c, 0, sizeof *c);
}

const char *wf__cluster_tls_name(const wf__cluster_conf *c, const char *node)
{
    for (int i = 0; i < c->ntls_name; i++)
        if (strcmp(c->tls_name_node[i], node) == 0)
            return c->tls_name[i];
    return c->tls_server_name[0] ? c->tls_server_name : NULL;
}

/* A time in ms, 1 to an hour, into *out; NULL or the problem. */
static const char *parse_ms(const char *value, unsigned *out)
{
    unsigned long long n;
    if (!whole_number(value, 1, 3600000, &n))
        return "a time in milliseconds, 1 to 3600000";
    *out = (unsigned)n;
    return NULL;
}

/* tls-cert-key, tls-ca, tls-server-name (who NULL) or tls-name WHO. */
static const char *parse_tls(const char *key, const char *who, const char *value,
                             wf__cluster_conf *c)
{
    bool name = strcmp(key, "tls-name") == 0;
    if (name != (who != NULL))
        return name ? "tls-name needs a node name (tls-name NODE = NAME)"
                    : "tls-cert-key, tls-ca and tls-server-name take no node name";
    if (*value == '\0')
        return "an empty TLS setting";
    if (value[strcspn(value, " \t")] != '\0')
        return "a TLS setting has no spaces";
    if (name) {
        if (*who == '\0' || who[strcspn(who, " \t")] != '\0')
            return "a node name has no spaces";
        for (int i = 0; i < c->ntls_name; i++)
            if (strcmp(c->tls_name_node[i], who) == 0)
                return "tls-name set twice for a node";
        if (c->ntls_name == WF__CLUSTER_MAX_URLS + 1)
            return "more tls-name lines than nodes";
        char *n = strdup(who), *v = strdup(value);
        if (n == NULL || v == NULL) {
            free(n);
            free(v);
            return "out of memory";
        }
        c->tls_name_node[c->ntls_name] = n;
        c->tls_name_line[c->ntls_name] = c->lineno;
        c->tls_name[c->ntls_name++] = v;
        return NULL;
    }
    char *dst = strcmp(key, "tls-ca") == 0         ? c->tls_ca
                : strcmp(key, "tls-cert-key") == 0 ? c->tls_cert_key
                                                   : c->tls_server_name;
    if (dst[0] != '\0')
        return "a TLS setting given twice";
    if (!copy_fits(dst, sizeof c->tls_ca, value))
        return "a TLS setting longer than 255 bytes";
    return NULL;
}

/* One line, l (trimmed, not a comment), into c. Returns NULL or the
 * problem. */
static const char *parse_line(char *l, const char *self, wf__cluster_conf *c, char *scratch)
{
    char *eq = strchr(l, '=');
    if (eq == NULL)
        return "expected KEY = VALUE";
    *eq = '\0';
    char *key = trim(l), *value = trim(eq + 1);
    char *sp = key + strcspn(key, " \t");
    char *who = NULL;
    if (*sp != '\0') {
        *sp = '\0';
        who = trim(sp + 1);
    }
    bool secret = strcmp(key, "secret") == 0, secret_file = strcmp(key, "secret-file") == 0;
    if (secret || secret_file) {
        if (who != NULL)
            return "secret and secret-file take no node name";
        if (*value == '\0')
            return "empty secret";
        if (c->secret[0] != '\0' || c->secret_file[0] != '\0')
            return NULL; /* the first one counts */
        if (!copy_fits(secret ? c->secret : c->secret_file,
                       secret ? sizeof c->secret : sizeof c->secret_file, value))
            return secret ? "secret longer than 255 bytes"
                          : "secret-file path longer than 255 bytes";
        return NULL;
    }
    if (strchr(key, '.') != NULL) {
        if (who != NULL)
            return "ACTOR.OPTION takes no node name";
        return parse_option(key, value, c, scratch);
    }
    if (strncmp(key, "tls-", 4) == 0 &&
        (strcmp(key, "tls-cert-key") == 0 || strcmp(key, "tls-ca") == 0 ||
         strcmp(key, "tls-server-name") == 0 || strcmp(key, "tls-name") == 0))
        return parse_tls(key, who, value, c);
    unsigned *ms = strcmp(key, "heartbeat") == 0      ? &c->heartbeat_ms
                   : strcmp(key, "peer-timeout") == 0 ? &c->peer_timeout_ms
                   : strcmp(key, "connect-wait") == 0 ? &c->connect_wait_ms
                   : strcmp(key, "timeout") == 0      ? &c->timeout_ms
                                                      : NULL;
    if (ms != NULL) {
        if (who != NULL)
            return "heartbeat, peer-timeout, connect-wait and timeout take no node name";
        const char *problem = parse_ms(value, ms);
        if (problem != NULL)
            return problem;
        if (c->heartbeat_ms && c->peer_timeout_ms && c->peer_timeout_ms <= c->heartbeat_ms)
            return "peer-timeout must be longer than heartbeat";
        return NULL;
    }
    bool node = strcmp(key, "node") == 0, actors = strcmp(key, "actors") == 0;
    if (!node && !actors)
        return "unknown key (secret, secret-file, node NAME, actors NAME, heartbeat, "
               "peer-timeout, connect-wait, timeout, tls-cert-key, tls-ca, tls-server-name, "
               "tls-name NODE)";
    if (who == NULL || *who == '\0')
        return "a node name is missing (node NAME = URL, actors NAME = ...)";
    if (who[strcspn(who, " \t")] != '\0')
        return "a node name has no spaces";
    if (actors)
        return parse_actors(who, self, value, c);
    if (*value == '\0')
        return "node without a URL";
    int cmp = strcmp(who, self);
    if (cmp == 0) {
        if (c->nlisten == WF__CLUSTER_MAX_URLS)
            return "more than 16 URLs for this node";
        if ((c->listen[c->nlisten] = strdup(value)) == NULL)
            return "out of memory";
        c->nlisten++;
        return NULL;
    }
    for (int i = 0; i < c->npeer; i++)
        if (strcmp(c->peer_name[i], who) == 0)
            return "node named twice (one URL per other node)";
    if (c->npeer == WF__CLUSTER_MAX_URLS)
        return "more than 16 other nodes";
    char *name = strdup(who), *url = cmp > 0 ? strdup(value) : NULL;
    if (name == NULL || (cmp > 0 && url == NULL)) {
        free(name);
        free(url);
        return "out of memory";
    }
    c->peer_name[c->npeer] = name;
    c->peer_url[c->npeer++] = url;
    return NULL;
}

int wf__cluster_conf_parse(const char *text, size_t len, const char *file, const char *self,
                           wf__cluster_conf *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char line[WF__CLUSTER_LINE_MAX + 2];
    int lineno = 0;
    const char *problem = NULL;
    char scratch[400];
    for (size_t off = 0; off < len && problem == NULL;) {
        lineno++;
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
        if (n > WF__CLUSTER_LINE_MAX) {
            problem = "line longer than 1023 bytes";
        } else if (memchr(text + off, '\0', n) != NULL) {
            problem = "NUL byte in the line";
        } else {
            memcpy(line, text + off, n);
            line[n] = '\0';
            char *l = trim(line);
            out->lineno = lineno;
            if (*l != '\0' && *l != '#')
                problem = parse_line(l, self, out, scratch);
        }
        off += n + (nl != NULL);
    }
    /* A name for a node the file does not name is a typo: its node would
     * be checked against another name without a word. */
    for (int i = 0; problem == NULL && i < out->ntls_name; i++) {
        bool known = strcmp(out->tls_name_node[i], self) == 0;
        for (int k = 0; !known && k < out->npeer; k++)
            known = strcmp(out->peer_name[k], out->tls_name_node[i]) == 0;
        if (!known) {
            lineno = out->tls_name_line[i];
            problem = "tls-name for a node the file does not name";
        }
    }
    if (problem != NULL) {
        snprintf(err, errlen, "%s:%d: %s", file, lineno, problem);
        wf__cluster_conf_free(out);
        return -1;
    }
    return 0;
}
