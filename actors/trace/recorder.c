/* The flight recorder (recorder.h): segment files in a bounded ring,
 * dumps as hard links, and the crash-signal dump. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <weft/alloc.h>
#include <weft/error.h>
#include <weft/log.h>

#include "recorder.h"

#define SEGMENTS  8  /* a segment is a bound's eighth: the ring drops an eighth at a time */
#define SEG_NAME  16 /* "0000000001.wftr" and its NUL */
#define CRASH_MAX 8  /* recorders a crash dumps: nodes per process that record */

struct seg {
    uint64_t no, bytes;
    int64_t last_ns; /* wall clock of its last write */
};

struct recorder {
    char *node;     /* as it appears in file names */
    char *ring_dir; /* DIR/NODE.ring */
    char *dump_dir; /* DIR/dumps */
    int ring_fd, dumps_fd;
    int seg_fd; /* the segment being written, -1 between segments */
    int64_t seg_start;
    uint64_t seg_max, max_bytes, total;
    int64_t seg_age, max_age; /* ns; 0: no bound */
    unsigned keep_dumps;
    struct seg *segs; /* oldest first; the last is being written when seg_fd >= 0 */
    size_t nsegs, cap;
    uint64_t next_no;
    int crash_slot; /* -1: none */
};

static void seg_name(char out[SEG_NAME], uint64_t no)
{
    for (int i = 9; i >= 0; i--, no /= 10)
        out[i] = (char)('0' + no % 10);
    memcpy(out + 10, ".wftr", 6);
}

/* ---- the crash dump: async-signal-safe code only ---- */

/* Why global: a signal handler has no other way to reach the recorders.
 * Slots are claimed once and their numbers published with atomics. */
static struct crash_slot {
    atomic_bool used;
    int ring_fd, dumps_fd;
    atomic_uint_fast64_t first, last; /* segment numbers in the ring */
    char node[64];
} crash_slots[CRASH_MAX];
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static struct sigaction crash_old[sizeof crash_signals / sizeof *crash_signals];
static atomic_flag crash_installed = ATOMIC_FLAG_INIT;
static atomic_flag crash_running = ATOMIC_FLAG_INIT;

static char *put_num(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

/* "20261206T071501.123Z": UTC from the epoch by hand (no gmtime_r: it
 * may take locks, and a crash handler must not). */
static char *put_time(char *p, int64_t ns)
{
    int64_t s = ns / 1000000000, days = s / 86400, rem = s % 86400;
    /* Howard Hinnant's civil_from_days. */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    p = put_num(p, (uint64_t)y, 4);
    p = put_num(p, (uint64_t)m, 2);
    p = put_num(p, (uint64_t)d, 2);
    *p++ = 'T';
    p = put_num(p, (uint64_t)(rem / 3600), 2);
    p = put_num(p, (uint64_t)(rem / 60 % 60), 2);
    p = put_num(p, (uint64_t)(rem % 60), 2);
    *p++ = '.';
    p = put_num(p, (uint64_t)(ns / 1000000 % 1000), 3);
    *p++ = 'Z';
    return p;
}

/* TIME-WHAT-NODE into out (room for 160 bytes); WHAT and NODE are cut to
 * fit and anything but [A-Za-z0-9._] becomes '_'. */
static void make_name(char *out, int64_t wall_ns, const char *what, const char *node)
{
    char *p = put_time(out, wall_ns);
    const char *parts[2] = {what, node};
    for (int k = 0; k < 2; k++) {
        *p++ = '-';
        for (size_t i = 0; parts[k][i] != '\0' && i < 64; i++) {
            char c = parts[k][i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_';
            *p++ = ok ? c : '_';
        }
    }
    *p = '\0';
}

void wf__recorder_name(char *out, int64_t wall_ns, const char *what, const char *node)
{
    make_name(out, wall_ns, what, node);
}

static void link_all(int ring_fd, int dir_fd, uint64_t first, uint64_t last)
{
    char seg[SEG_NAME];
    for (uint64_t no = first; no <= last && no != 0; no++) {
        seg_name(seg, no);
        (void)linkat(ring_fd, seg, dir_fd, seg, 0);
    }
}

static void on_crash(int sig)
{
    if (!atomic_flag_test_and_set(&crash_running)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        const char *what = sig == SIGSEGV  ? "SIGSEGV"
                           : sig == SIGBUS ? "SIGBUS"
                           : sig == SIGFPE ? "SIGFPE"
                           : sig == SIGILL ? "SIGILL"
                                           : "SIGABRT";
        for (int i = 0; i < CRASH_MAX; i++) {
            struct crash_slot *s = &crash_slots[i];
            if (!atomic_load(&s->used))
                continue;
            char name[160];
            make_name(name, now, what, s->node);
            if (mkdirat(s->dumps_fd, name, 0755) != 0)
                continue;
            int fd = openat(s->dumps_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0)
                continue;
            link_all(s->ring_fd, fd, atomic_load(&s->first), atomic_load(&s->last));
            close(fd);
        }
    }
    /* The signal's own action now: the fault repeats, or abort goes on. */
    for (size_t i = 0; i < sizeof crash_signals / sizeof *crash_signals; i++) {
        if (crash_signals[i] == sig)
            sigaction(sig, &crash_old[i], NULL);
    }
    raise(sig);
}

void wf__recorder_on_crash(struct recorder *r)
{
    for (int i = 0; i < CRASH_MAX && r->crash_slot < 0; i++) {
        bool no = false;
        if (atomic_compare_exchange_strong(&crash_slots[i].used, &no, true)) {
            struct crash_slot *s = &crash_slots[i];
            s->ring_fd = r->ring_fd;
            s->dumps_fd = r->dumps_fd;
            snprintf(s->node, sizeof s->node, "%s", r->node);
            atomic_store(&s->first, r->nsegs ? r->segs[0].no : 0);
            atomic_store(&s->last, r->nsegs ? r->segs[r->nsegs - 1].no : 0);
            r->crash_slot = i;
        }
    }
    if (r->crash_slot < 0) {
        wf_log(WF_LOG_WARN, "trace ring %s: more than %d recorders; a crash does not dump this one",
               r->ring_dir, CRASH_MAX);
        return;
    }
    if (atomic_flag_test_and_set(&crash_installed))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (size_t i = 0; i < sizeof crash_signals / sizeof *crash_signals; i++)
        sigaction(crash_signals[i], &sa, &crash_old[i]);
}

static void crash_publish(struct recorder *r)
{
    if (r->crash_slot < 0)
        return;
    struct crash_slot *s = &crash_slots[r->crash_slot];
    atomic_store(&s->first, r->nsegs ? r->segs[0].no : 0);
    atomic_store(&s->last, r->nsegs ? r->segs[r->nsegs - 1].no : 0);
}

/* ---- the ring ---- */

static int mkdir_p(const char *path)
{
    char *p = wf_strdup(path);
    int rv = p ? 0 : -1;
    for (char *s = p ? p + 1 : NULL; rv == 0 && s != NULL; s = strchr(s + 1, '/')) {
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rv = -1;
        *s = c;
        if (c == '\0')
            break;
    }
    if (rv == 0 && mkdir(path, 0755) != 0 && errno != EEXIST)
        rv = -1;
    wf_free(p);
    return rv;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 2;
    char *s = wf_malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s%s", a, b, c);
    return s;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->no < y->no ? -1 : x->no > y->no;
}

static int push_seg(struct recorder *r, struct seg s)
{
    if (r->nsegs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct seg *n = wf_realloc(r->segs, cap * sizeof *n);
        if (n == NULL)
            return WF_ENOMEM;
        r->segs = n;
        r->cap = cap;
    }
    r->segs[r->nsegs++] = s;
    r->total += s.bytes;
    return 0;
}

/* A fresh stream over directory fd's entries. Why not fdopendir(dup(fd)):
 * a dup shares the offset, so after one reading to the end every later
 * one would see no entries. */
static DIR *open_entries(int fd)
{
    int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = own >= 0 ? fdopendir(own) : NULL;
    if (d == NULL && own >= 0)
        close(own);
    return d;
}

/* Segments an earlier run left. */
static int scan(struct recorder *r)
{
    DIR *d = open_entries(r->ring_fd);
    if (d == NULL)
        return WF_EIO;
    struct dirent *de;
    int rv = 0;
    while (rv == 0 && (de = readdir(d)) != NULL) {
        char *end;
        unsigned long long no = strtoull(de->d_name, &end, 10);
        struct stat st;
        if (strlen(de->d_name) != SEG_NAME - 1 || end != de->d_name + 10 ||
            strcmp(end, ".wftr") != 0 || no == 0 || fstatat(r->ring_fd, de->d_name, &st, 0) != 0)
            continue;
        int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        rv = push_seg(r, (struct seg){no, (uint64_t)st.st_size, mt});
        if (no >= r->next_no)
            r->next_no = no + 1;
    }
    closedir(d);
    if (r->nsegs > 1)
        qsort(r->segs, r->nsegs, sizeof *r->segs, cmp_seg);
    return rv;
}

/* Drops the oldest segments past the bounds; the newest always stays. */
static void trim(struct recorder *r, int64_t now)
{
    size_t drop = 0;
    while (r->nsegs - drop > 1 &&
           (r->total > r->max_bytes || (r->max_age && now - r->segs[drop].last_ns > r->max_age))) {
        char seg[SEG_NAME];
        seg_name(seg, r->segs[drop].no);
        if (unlinkat(r->ring_fd, seg, 0) != 0 && errno != ENOENT)
            wf_log(WF_LOG_WARN, "trace ring %s/%s cannot be removed: %s", r->ring_dir, seg,
                   strerror(errno));
        r->total -= r->segs[drop].bytes;
        drop++;
    }
    if (drop > 0) {
        memmove(r->segs, r->segs + drop, (r->nsegs - drop) * sizeof *r->segs);
        r->nsegs -= drop;
        crash_publish(r);
    }
}

struct recorder *wf__recorder_open(const char *dir, const char *node, uint64_t max_bytes,
                                   unsigned max_seconds, unsigned keep_dumps, int *err)
{
    struct recorder *r = wf_malloc(sizeof *r);
    *err = WF_ENOMEM;
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof *r);
    r->ring_fd = r->dumps_fd = r->seg_fd = -1;
    r->crash_slot = -1;
    r->next_no = 1;
    r->max_bytes = max_bytes;
    r->seg_max = max_bytes / SEGMENTS;
    r->max_age = (int64_t)max_seconds * 1000000000;
    r->seg_age = r->max_age / SEGMENTS;
    r->keep_dumps = keep_dumps;
    char fname[160];
    make_name(fname, 0, "", node);
    if ((r->node = wf_strdup(fname + 22)) == NULL || /* past "19700101T000000.000Z--" */
        (r->ring_dir = join(dir, r->node, ".ring")) == NULL ||
        (r->dump_dir = join(dir, "dumps", "")) == NULL)
        goto fail;
    *err = WF_EIO;
    if (mkdir_p(r->ring_dir) != 0 || mkdir_p(r->dump_dir) != 0) {
        wf_log(WF_LOG_ERROR, "trace ring %s cannot be made: %s", dir, strerror(errno));
        goto fail;
    }
    if ((r->ring_fd = open(r->ring_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (r->dumps_fd = open(r->dump_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        wf_log(WF_LOG_ERROR, "trace ring %s cannot be opened: %s", dir, strerror(errno));
        goto fail;
    }
    if ((*err = scan(r)) != 0)
        goto fail;
    return r;

fail:
    wf__recorder_close(r);
    return NULL;
}

static int new_segment(struct recorder *r, int64_t now)
{
    char seg[SEG_NAME];
    seg_name(seg, r->next_no);
    int fd = openat(r->ring_fd, seg, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (push_seg(r, (struct seg){r->next_no, 0, now}) != 0) {
        close(fd);
        unlinkat(r->ring_fd, seg, 0);
        return -1;
    }
    r->next_no++;
    r->seg_fd = fd;
    r->seg_start = now;
    crash_publish(r);
    return 0;
}

static void end_segment(struct recorder *r)
{
    if (r->seg_fd >= 0)
        close(r->seg_fd);
    r->seg_fd = -1;
}

int wf__write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

void wf__recorder_append(struct recorder *r, const struct iovec *iov, int n, size_t len,
                         int64_t now)
{
    struct seg *cur = r->seg_fd >= 0 ? &r->segs[r->nsegs - 1] : NULL;
    if (cur != NULL && ((cur->bytes > 0 && cur->bytes + len > r->seg_max) ||
                        (r->seg_age && now - r->seg_start >= r->seg_age)))
        end_segment(r);
    if (r->seg_fd < 0 && new_segment(r, now) != 0) {
        wf_log(WF_LOG_ERROR, "trace ring %s: a segment cannot be made: %s", r->ring_dir,
               strerror(errno));
        return;
    }
    cur = &r->segs[r->nsegs - 1];
    struct iovec v[8];
    n = n < 8 ? n : 8;
    memcpy(v, iov, (size_t)n * sizeof *v);
    if (wf__write_all(r->seg_fd, v, n) != 0) {
        /* A chunk cut short would read as the end of the segment: the
         * segment ends here, and the next chunk starts a new one. */
        wf_log(WF_LOG_ERROR, "trace ring %s: write failed: %s", r->ring_dir, strerror(errno));
        if (ftruncate(r->seg_fd, (off_t)cur->bytes) != 0)
            r->total += len; /* what stays is counted, whatever it is */
        end_segment(r);
        return;
    }
    cur->bytes += len;
    cur->last_ns = now;
    r->total += len;
    trim(r, now);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void remove_dump(int dumps_fd, const char *name)
{
    int fd = openat(dumps_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        DIR *d = fdopendir(fd);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (de->d_name[0] != '.')
                unlinkat(fd, de->d_name, 0);
        }
        if (d != NULL)
            closedir(d);
        else
            close(fd);
    }
    unlinkat(dumps_fd, name, AT_REMOVEDIR);
}

/* Removes the oldest dumps past keep_dumps (names start with the time). */
static void trim_dumps(struct recorder *r)
{
    DIR *d = open_entries(r->dumps_fd);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **m = wf_realloc(names, (cap = cap ? cap * 2 : 32) * sizeof *m);
            if (m == NULL)
                break;
            names = m;
        }
        if ((names[n] = wf_strdup(de->d_name)) == NULL)
            break;
        n++;
    }
    if (d != NULL)
        closedir(d);
    if (n > r->keep_dumps) {
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n - r->keep_dumps; i++)
            remove_dump(r->dumps_fd, names[i]);
    }
    for (size_t i = 0; i < n; i++)
        wf_free(names[i]);
    wf_free(names);
}

int wf__recorder_dump(struct recorder *r, const char *name)
{
    end_segment(r); /* from now on the kept segments do not change */
    /* Asked for again within the millisecond that named the last one: the
     * caller was told this name, so it must hold everything up to now. */
    int rv = mkdirat(r->dumps_fd, name, 0755);
    if (rv != 0 && errno == EEXIST) {
        remove_dump(r->dumps_fd, name);
        rv = mkdirat(r->dumps_fd, name, 0755);
    }
    if (rv != 0) {
        wf_log(WF_LOG_ERROR, "trace dump %s/%s cannot be made: %s", r->dump_dir, name,
               strerror(errno));
        return WF_EIO;
    }
    int fd = openat(r->dumps_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return WF_EIO;
    link_all(r->ring_fd, fd, r->nsegs ? r->segs[0].no : 0, r->nsegs ? r->segs[r->nsegs - 1].no : 0);
    close(fd);
    trim_dumps(r);
    return 0;
}

const char *wf__recorder_dump_dir(const struct recorder *r)
{
    return r->dump_dir;
}

void wf__recorder_close(struct recorder *r)
{
    if (r == NULL)
        return;
    if (r->crash_slot >= 0)
        atomic_store(&crash_slots[r->crash_slot].used, false);
    end_segment(r);
    if (r->ring_fd >= 0)
        close(r->ring_fd);
    if (r->dumps_fd >= 0)
        close(r->dumps_fd);
    wf_free(r->segs);
    wf_free(r->node);
    wf_free(r->ring_dir);
    wf_free(r->dump_dir);
    wf_free(r);
}
