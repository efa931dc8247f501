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

void wf__cluster_conf_free(wf__cluster_conf *c)
{
    for (int i = 0; i < c->nlisten; i++)
        free(c->listen[i]);
    for (int i = 0; i < c->npeer; i++) {
        free(c->peer_name[i]);
        free(c->peer_url[i]);
    }
    memset(c, 0, sizeof *c);
}

/* One line, l (trimmed, not a comment), into c. Returns NULL or the
 * problem. */
static const char *parse_line(char *l, const char *self, wf__cluster_conf *c)
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
    bool hb = strcmp(key, "heartbeat") == 0, pt = strcmp(key, "peer-timeout") == 0;
    if (hb || pt) {
        if (who != NULL)
            return "heartbeat and peer-timeout take no node name";
        size_t digits = strspn(value, "0123456789");
        if (digits == 0 || value[digits] != '\0' || digits > 7 || atol(value) < 1 ||
            atol(value) > 3600000)
            return "a time in milliseconds, 1 to 3600000";
        *(hb ? &c->heartbeat_ms : &c->peer_timeout_ms) = (unsigned)atol(value);
        if (c->heartbeat_ms && c->peer_timeout_ms && c->peer_timeout_ms <= c->heartbeat_ms)
            return "peer-timeout must be longer than heartbeat";
        return NULL;
    }
    bool node = strcmp(key, "node") == 0, actors = strcmp(key, "actors") == 0;
    if (!node && !actors)
        return "unknown key (secret, secret-file, node NAME, actors NAME, heartbeat, "
               "peer-timeout)";
    if (who == NULL || *who == '\0')
        return "a node name is missing (node NAME = URL, actors NAME = ...)";
    if (who[strcspn(who, " \t")] != '\0')
        return "a node name has no spaces";
    if (actors) {
        if (strcmp(who, self) == 0) {
            if (!copy_fits(c->actors, sizeof c->actors, value))
                return "actors list longer than 511 bytes";
            c->has_actors = 1;
        }
        return NULL;
    }
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
            if (*l != '\0' && *l != '#')
                problem = parse_line(l, self, out);
        }
        off += n + (nl != NULL);
    }
    if (problem != NULL) {
        snprintf(err, errlen, "%s:%d: %s", file, lineno, problem);
        wf__cluster_conf_free(out);
        return -1;
    }
    return 0;
}
