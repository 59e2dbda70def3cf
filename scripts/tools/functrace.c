// functrace FUNCS OUT command...: which functions of a program run (scripts/order-device-code).
//
// Runs the command under ptrace. In every process it starts that executes TRACE_EXE with arguments beginning
// with TRACE_ARGS (e.g. "device run"), a one-shot breakpoint (int3) is written at each function entry listed
// in FUNCS (hex offsets in the executable's address space, one per line). When one is hit, the original byte
// goes back, the thread resumes at the entry, and the offset is appended to OUT: so each function that runs
// costs one stop per process, and the program runs at full speed otherwise. Addresses are not randomised
// (ADDR_NO_RANDOMIZE), and TRACE_FIRST=1 also plants in the command's own process. It exits with the
// command's status. Every process the command starts runs under ptrace (slightly slower), SIGSTOPs are not
// passed on, and a planted process must not fork (its child would keep the breakpoints, untraced); `device
// run` does not. Linux x86-64 only.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/user.h>
#include <sys/personality.h>

static uint64_t *funcs; static size_t nfuncs;
static int cmp(const void *a, const void *b) { uint64_t x = *(uint64_t *)a, y = *(uint64_t *)b; return x < y ? -1 : x > y; }
static long find(uint64_t off) {
    size_t lo = 0, hi = nfuncs;
    while (lo < hi) { size_t m = (lo + hi) / 2; if (funcs[m] < off) lo = m + 1; else hi = m; }
    return (lo < nfuncs && funcs[lo] == off) ? (long)lo : -1;
}
#define MAXP 256
struct proc { pid_t tgid; uint64_t base; unsigned char *orig; char *armed; int memfd; } procs[MAXP];
static int nprocs;
static pid_t tgid_of(pid_t tid) {
    char path[64], line[256]; snprintf(path, sizeof path, "/proc/%d/status", tid);
    FILE *f = fopen(path, "r"); if (!f) return tid;
    pid_t t = tid; while (fgets(line, sizeof line, f)) if (!strncmp(line, "Tgid:", 5)) t = atoi(line + 5);
    fclose(f); return t;
}
static struct proc *proc_of(pid_t tgid) { for (int i = 0; i < nprocs; i++) if (procs[i].tgid == tgid) return &procs[i]; return NULL; }
static FILE *out;

static void plant(pid_t pid) {
    char path[64], line[512], exe[512];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1); if (n < 0) return; exe[n] = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r"); uint64_t base = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e, off; char perm[8];
        if (sscanf(line, "%lx-%lx %7s %lx", &s, &e, perm, &off) == 4 && strstr(line, exe) && off == 0) { base = s; break; }
    }
    fclose(f);
    if (!base) return;
    const char *want = getenv("TRACE_EXE");
    if (want && strcmp(want, exe) != 0) return;
    const char *arg = getenv("TRACE_ARGS");  // e.g. "device run": plant only when argv[1..2] match
    if (arg) {
        char cmd[4096]; snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        FILE *c = fopen(path, "r"); size_t k = c ? fread(cmd, 1, sizeof cmd - 1, c) : 0; if (c) fclose(c); cmd[k] = 0;
        for (size_t j = 0; j + 1 < k; j++) if (cmd[j] == 0) cmd[j] = ' ';
        char *first = strchr(cmd, ' ');
        if (!first || strncmp(first + 1, arg, strlen(arg)) != 0) return;
    }
    struct proc *p = proc_of(pid);
    if (!p) for (int i = 0; i < nprocs; i++) if (kill(procs[i].tgid, 0) != 0) { p = &procs[i]; free(p->orig); free(p->armed); close(p->memfd); break; }
    if (!p && nprocs < MAXP) p = &procs[nprocs++];
    if (!p) return;
    if (p->tgid == pid && p->orig) { free(p->orig); free(p->armed); close(p->memfd); }
    p->tgid = pid; p->base = base; p->orig = malloc(nfuncs); p->armed = calloc(nfuncs, 1);
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    p->memfd = open(path, O_RDWR);
    if (p->memfd < 0) { perror(path); p->tgid = 0; return; }
    unsigned char cc = 0xCC;
    size_t planted = 0;
    for (size_t i = 0; i < nfuncs; i++) {
        if (pread(p->memfd, &p->orig[i], 1, base + funcs[i]) != 1) continue;
        if (pwrite(p->memfd, &cc, 1, base + funcs[i]) == 1) { p->armed[i] = 1; planted++; }
    }
    fprintf(stderr, "functrace: pid %d base %lx: %zu breakpoints\n", pid, (unsigned long)base, planted);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: functrace FUNCS OUT command [argument...]\n"); return 2; }
    FILE *ff = fopen(argv[1], "r");
    if (!ff) { perror(argv[1]); return 2; }
    size_t cap = 1 << 20; funcs = malloc(cap * 8);
    char line[128]; while (fgets(line, sizeof line, ff)) { if (nfuncs == cap) funcs = realloc(funcs, (cap *= 2) * 8); funcs[nfuncs++] = strtoull(line, 0, 16); }
    fclose(ff); qsort(funcs, nfuncs, 8, cmp);
    out = fopen(argv[2], "w");
    if (!out) { perror(argv[2]); return 2; }
    int traceFirst = getenv("TRACE_FIRST") != NULL;
    pid_t child = fork();
    if (child == 0) {
        personality(ADDR_NO_RANDOMIZE);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    int status; waitpid(child, &status, 0);
    ptrace(PTRACE_SETOPTIONS, child, 0,
           PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, child, 0, 0);
    int execs = 0, result = 1; size_t hits = 0;
    for (;;) {
        pid_t tid = waitpid(-1, &status, __WALL);
        if (tid < 0) { if (errno == EINTR) continue; break; }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (tid == child) { result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); break; }
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), event = status >> 16, deliver = 0;
        if (sig == SIGTRAP && event) {
            if (event == PTRACE_EVENT_EXEC) {
                execs++;
                if (tid != child || execs > 1 || traceFirst) plant(tid);
            }
        } else if (sig == SIGTRAP) {
            struct user_regs_struct regs;
            siginfo_t info;
            struct proc *p = proc_of(tgid_of(tid));
            long i = -1;
            // An int3 reports SI_KERNEL; any other SIGTRAP is the program's own and is delivered.
            if (p && ptrace(PTRACE_GETSIGINFO, tid, 0, &info) == 0 && info.si_code == SI_KERNEL
                && ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0)
                i = find(regs.rip - 1 - p->base);
            if (i >= 0) {
                if (p->armed[i]) {
                    pwrite(p->memfd, &p->orig[i], 1, p->base + funcs[i]);
                    p->armed[i] = 0; hits++;
                    fprintf(out, "%016lx\n", (unsigned long)funcs[i]);  // as readelf prints it
                }
                regs.rip -= 1;
                ptrace(PTRACE_SETREGS, tid, 0, &regs);
            } else deliver = sig;
        } else if (sig == SIGSTOP) {
            deliver = 0;
        } else deliver = sig;
        ptrace(PTRACE_CONT, tid, 0, (void *)(long)deliver);
    }
    fclose(out);
    fprintf(stderr, "functrace: %zu functions ran; the command exited %d\n", hits, result);
    return result;  // the command's own status
}
