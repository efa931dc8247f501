#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "proc.h"

void tu_proc_start(tu_proc *p, char *const argv[])
{
    int in[2], out[2];
    memset(p, 0, sizeof *p);
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    pid_t parent = getpid();
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        /* It dies with the test process, even when that is killed (a
         * timeout): no server is left running after a crashed suite. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[1]);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->in = in[1];
    p->out = out[0];
    signal(SIGPIPE, SIG_IGN);
}

void tu_proc_send(tu_proc *p, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    buf[n++] = '\n';
    ssize_t w = write(p->in, buf, (size_t)n);
    (void)w;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Takes one complete line out of pending into p->line. */
static int take_line(tu_proc *p)
{
    char *nl = memchr(p->pending, '\n', p->len);
    if (nl == NULL)
        return 0;
    size_t n = (size_t)(nl - p->pending);
    size_t keep = n < sizeof p->line - 1 ? n : sizeof p->line - 1;
    memcpy(p->line, p->pending, keep);
    p->line[keep] = '\0';
    memmove(p->pending, nl + 1, p->len - n - 1);
    p->len -= n + 1;
    return 1;
}

const char *tu_proc_expect(tu_proc *p, const char *needle, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    for (;;) {
        while (take_line(p)) {
            int n = snprintf(p->log + p->loglen, sizeof p->log - p->loglen, "%s\n", p->line);
            if (n > 0 && (size_t)n < sizeof p->log - p->loglen)
                p->loglen += (size_t)n;
            if (strstr(p->line, needle) != NULL)
                return p->line;
        }
        long long left = end - now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pfd = {p->out, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(p->out, p->pending + p->len, sizeof p->pending - p->len - 1);
        if (r <= 0)
            return NULL; /* it ended */
        p->len += (size_t)r;
    }
}

int tu_proc_stop(tu_proc *p)
{
    int status = -1;
    if (p->pid <= 0)
        return status;
    close(p->in);
    for (int i = 0; i < 500; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            close(p->out);
            p->pid = 0;
            return status;
        }
        tu_sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    close(p->out);
    p->pid = 0;
    return status;
}

void tu_proc_kill(tu_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    close(p->in);
    close(p->out);
    p->pid = 0;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}
