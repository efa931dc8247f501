/* Child processes for multi-process tests: start a program with pipes to
 * its standard input and output, send it lines, wait for lines, stop it.
 * Every wait is bounded. */
#ifndef WF_TESTS_PROC_H
#define WF_TESTS_PROC_H

#include <sys/types.h>

typedef struct tu_proc {
    pid_t pid;
    int in, out;         /* its stdin (we write), its stdout+stderr (we read) */
    char pending[65536]; /* read, not yet split into lines */
    size_t len;
    char log[1 << 18]; /* everything it printed, for failure messages */
    size_t loglen;
    char line[8192]; /* the line tu_proc_expect matched */
} tu_proc;

/* Starts argv[0] (a path) with argv; fails the test if it cannot. */
void tu_proc_start(tu_proc *p, char *const argv[]);
/* Writes one line (a newline is added). */
void tu_proc_send(tu_proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads until a line containing needle; returns it, or NULL after
 * timeout_ms (or if the process ended). */
const char *tu_proc_expect(tu_proc *p, const char *needle, int timeout_ms);
/* Closes its stdin and waits (up to 5 s, then SIGKILL); returns the exit
 * status as from waitpid. */
int tu_proc_stop(tu_proc *p);
/* Sleeps ms milliseconds. */
void tu_sleep_ms(int ms);
/* Kills it now (SIGKILL) and reaps it, as a crash would. */
void tu_proc_kill(tu_proc *p);
/* A loopback TCP port nobody uses now (the kernel picks it), for a child
 * that must be told its port before it starts. */
int tu_free_port(void);

#endif
