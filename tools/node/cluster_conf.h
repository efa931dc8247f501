/* The cluster file of weft-node, read by weft-node and by its fuzz target
 * (tools/node/fuzz). Internal to tools/node.
 *
 *   # a comment
 *   secret = S                 (or: secret-file = PATH; the first one counts)
 *   node NAME = URL            (one line per node, this one included)
 *   actors NAME = echo fail    (the actors NAME runs; optional)
 *   heartbeat = MS             (weft/transport.h heartbeat_ms; optional)
 *   peer-timeout = MS          (peer_timeout_ms, longer than the heartbeat)
 *   connect-wait = MS          (connect_wait_ms: frames wait this long for a peer)
 *   timeout = MS               (the asks typed at weft-node; default 5000)
 *   tls-cert-key = PATH        (this node's certificate and key, PEM; every
 *                               node reads the same file: name one that each
 *                               host keeps at the same path)
 *   tls-ca = PATH              (the CA that signs every node's certificate;
 *                               with it, both ends of a connection show one)
 *   tls-server-name = NAME     (the name every node's certificate carries)
 *   tls-name NODE = NAME       (the name NODE's certificate carries: one
 *                               certificate per node; wins over the above;
 *                               with neither, the host in NODE's URL)
 *   ACTOR.OPTION = VALUE       (an option of a standard actor, e.g.
 *                               fetcher.upstream = poetry://10.0.0.4:10000;
 *                               wf__cluster_opt_names lists them)
 *
 * Actors: the demonstration ones (echo, fail, slow, relay) and the
 * standard ones (listener, cache, fetcher, renderer, transformer), each
 * standard one on at most one node: the others find it there by default
 * (the listener's cache is "cache@NODE" for the node whose actors line
 * names cache), so moving an actor to another host is an edit of its
 * actors lines. An option overrides such an address (listener.cache =
 * cache@x). Options are checked here, by actor, name and kind of value,
 * with the line of the mistake.
 *
 * Every node reads the same file: the node named self listens on its URLs,
 * knows every other node by name, and dials those whose names sort after
 * its own (so each pair has one connection). */
#ifndef WF_CLUSTER_CONF_H
#define WF_CLUSTER_CONF_H

#include <stddef.h>

#define WF__CLUSTER_MAX_URLS   16
#define WF__CLUSTER_LINE_MAX   1023 /* bytes of a line, without its newline */
#define WF__CLUSTER_STD_ACTORS 5
#define WF__CLUSTER_MAX_OPTS   64

typedef struct wf__cluster_conf {
    /* this node's URLs to listen on */
    char *listen[WF__CLUSTER_MAX_URLS];
    int nlisten;
    /* the other nodes, by name; url NULL when that node dials this one */
    char *peer_name[WF__CLUSTER_MAX_URLS], *peer_url[WF__CLUSTER_MAX_URLS];
    int npeer;
    char actors[512];                       /* the actors of this node, if has_actors */
    int has_actors;                         /* an "actors" line named this node ("" is none) */
    char secret[256];                       /* "" when the file has none (or a secret-file) */
    char secret_file[256];                  /* "" unless the first secret line was secret-file */
    unsigned heartbeat_ms, peer_timeout_ms; /* 0 when the file says nothing */
    unsigned connect_wait_ms, timeout_ms;   /* 0 when the file says nothing */
    char tls_cert_key[256], tls_ca[256], tls_server_name[256]; /* "" when not set */
    /* tls-name lines: the name each node's certificate carries */
    char *tls_name_node[WF__CLUSTER_MAX_URLS + 1], *tls_name[WF__CLUSTER_MAX_URLS + 1];
    int tls_name_line[WF__CLUSTER_MAX_URLS + 1]; /* where each was set, for errors */
    int ntls_name;
    int lineno; /* the line being read */
    /* the standard actors: where each runs (NULL: nowhere), and options */
    char *runs_on[WF__CLUSTER_STD_ACTORS];
    struct wf__cluster_opt {
        int actor;        /* index into wf__cluster_std_actors */
        const char *name; /* static: the option's name */
        char *value;      /* owned */
    } opt[WF__CLUSTER_MAX_OPTS];
    int nopt;
} wf__cluster_conf;

/* The name node's certificate must carry (a tls-name line, else
 * tls-server-name), or NULL: the URL's host. Borrowed from c. */
const char *wf__cluster_tls_name(const wf__cluster_conf *c, const char *node);

/* The standard actors, by index: listener, cache, fetcher, renderer,
 * transformer. */
extern const char *const wf__cluster_std_actors[WF__CLUSTER_STD_ACTORS];

/* wf__cluster_std_actor: the index of standard actor name, or -1. */
int wf__cluster_std_actor(const char *name);

/* wf__cluster_opt_get: the value of option name of standard actor
 * actor (an index) in c, or NULL if the file does not set it (borrowed). */
const char *wf__cluster_opt_get(const wf__cluster_conf *c, int actor, const char *name);

/* wf__cluster_opt_names writes the options of standard actor actor, space
 * separated, into out[0..size) (for messages). */
void wf__cluster_opt_names(int actor, char *out, size_t size);

/* wf__cluster_conf_parse reads the cluster file text[0..len) (borrowed;
 * need not be NUL-terminated) for the node named self into out, which then
 * owns its strings (wf__cluster_conf_free). file names the file in errors.
 * Returns 0, or -1 with err[0..errlen) set to "FILE:LINE: problem" and out
 * left empty (nothing to free). Any thread; no I/O (a secret-file is named,
 * not read). */
int wf__cluster_conf_parse(const char *text, size_t len, const char *file, const char *self,
                           wf__cluster_conf *out, char *err, size_t errlen);

/* wf__cluster_conf_free frees what out owns and leaves it empty. */
void wf__cluster_conf_free(wf__cluster_conf *c);

#endif
