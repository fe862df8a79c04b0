/* The native bin/pulumi: a client of the resident engine without an interpreter's start.
 *
 * It speaks launcher.py's protocol (see its docstring) and behaves as that launcher does while
 * a resident answers. Whenever it cannot hand the command over (resident off, no usable
 * socket, EOF before the pid) it execs the Python launcher FALLBACK with argv unchanged, which
 * starts a resident and runs the command itself: correctness never depends on this program.
 * install_root compiles it with STAMP (the resident's name), FALLBACK and BUILD_KEY defined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#if !defined(STAMP) || !defined(FALLBACK) || !defined(BUILD_KEY)
#error "STAMP, FALLBACK and BUILD_KEY must be defined"
#endif

#define EXIT_INTERRUPTED 8
#define POLL_MS 500
#define MAX_SIGNALS 64

/* install_root looks for this to tell whether the binary matches its source and paths. */
__attribute__((used)) static const char build_key[] = "offline-pulumi-native " BUILD_KEY;

extern char **environ;

/* SIGINT and SIGTERM are blocked except inside ppoll, so the handler never races the code
 * below; it only records, and the main loop forwards once the command's pid is known. */
static volatile sig_atomic_t sent[MAX_SIGNALS];
static volatile sig_atomic_t nsent;
static sigset_t unblocked; /* the mask we were started with */
static struct sigaction previous[2]; /* SIGINT's and SIGTERM's, for the Python launcher */
static int handling;
static pid_t command;
static int forwarded;

static void record(int signum) {
    sent[nsent < MAX_SIGNALS ? nsent : MAX_SIGNALS - 1] = signum;
    if (nsent < 1 << 30)
        nsent++;
}

static int signal_at(int i) { return sent[i < MAX_SIGNALS ? i : MAX_SIGNALS - 1]; }

static void forward_new(void) {
    for (; command > 0 && forwarded < nsent; forwarded++)
        kill(command, signal_at(forwarded));
}

static void run_python_launcher(char **argv) {
    /* Signals that came meanwhile run the handler now; the request was never handed over. */
    sigprocmask(SIG_SETMASK, &unblocked, NULL);
    if (nsent) {
        fputs("error: interrupted\n", stderr);
        exit(EXIT_INTERRUPTED);
    }
    if (handling) {
        sigaction(SIGINT, &previous[0], NULL);
        sigaction(SIGTERM, &previous[1], NULL);
    }
    execv(FALLBACK, argv);
    fprintf(stderr, "error: cannot run %s: %s\n", FALLBACK, strerror(errno));
    exit(127);
}

static const char *separator(const char *dir) {
    size_t n = strlen(dir);
    return n && dir[n - 1] == '/' ? "" : "/";
}

/* The socket path as launcher.resident_socket computes it; -1 where that gives None. */
static int socket_path(struct sockaddr_un *addr) {
    char fallback_dir[4096];
    const char *dir = getenv("OFFLINE_PULUMI_HOST_DIR");
    if (!dir || !*dir) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp)
            tmp = "/tmp";
        int n = snprintf(fallback_dir, sizeof fallback_dir, "%s%soffline-pulumi-hosts-%u", tmp,
                         separator(tmp), (unsigned)getuid());
        if (n < 0 || (size_t)n >= sizeof fallback_dir)
            return -1;
        dir = fallback_dir;
    }
    /* A missing parent directory is left to the Python launcher (os.makedirs). */
    struct stat info;
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || stat(dir, &info) < 0)
        return -1;
    /* Whoever can reach the socket runs commands as us. */
    if (info.st_uid != getuid() || (info.st_mode & 077))
        return -1;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    int n = snprintf(addr->sun_path, sizeof addr->sun_path, "%s%sengine-%s.sock", dir,
                     separator(dir), STAMP);
    return n > 0 && n < 100 ? 0 : -1;
}

/* cwd, umask, argc, argv, NAME=value environment: NUL-separated, no NUL at the end. */
static char *request(int argc, char **argv, size_t *size) {
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return NULL;
    mode_t mask = umask(0);
    umask(mask);
    char numbers[2][24];
    snprintf(numbers[0], sizeof numbers[0], "%u", (unsigned)mask);
    snprintf(numbers[1], sizeof numbers[1], "%d", argc - 1);
    size_t total = strlen(cwd) + strlen(numbers[0]) + strlen(numbers[1]) + 3;
    for (int i = 1; i < argc; i++)
        total += strlen(argv[i]) + 1;
    for (char **env = environ; *env; env++)
        if (strchr(*env, '='))
            total += strlen(*env) + 1;
    char *data = malloc(total), *end = data;
    if (data) {
        end = stpcpy(end, cwd) + 1;
        end = stpcpy(end, numbers[0]) + 1;
        end = stpcpy(end, numbers[1]) + 1;
        for (int i = 1; i < argc; i++)
            end = stpcpy(end, argv[i]) + 1;
        for (char **env = environ; *env; env++)
            if (strchr(*env, '='))
                end = stpcpy(end, *env) + 1;
        *size = (size_t)(end - data) - 1;
    }
    free(cwd);
    return data;
}

/* Waits for events on fd while forwarding signals and watching the caller; 0 when ready. */
static int wait_ready(int fd, short events, pid_t *caller) {
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        struct timespec timeout = {.tv_sec = POLL_MS / 1000, .tv_nsec = POLL_MS % 1000 * 1000000L};
        int n = ppoll(&p, 1, &timeout, &unblocked);
        forward_new();
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
        if (n == 0 && command > 0 && getppid() != *caller) {
            /* Nobody waits for this command any more: cancel it, once. */
            *caller = getppid();
            kill(command, SIGINT);
        }
    }
}

static int send_all(int fd, const char *data, size_t size, pid_t *caller) {
    while (size) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n < 0 && errno == EAGAIN && wait_ready(fd, POLLOUT, caller) < 0)
            return -1;
        if (n > 0) {
            data += n;
            size -= (size_t)n;
        }
    }
    return 0;
}

/* The header with our stdin, stdout and stderr attached, then the request. */
static int hand_over(int fd, const char *data, size_t size, pid_t *caller) {
    char header[16];
    snprintf(header, sizeof header, "%08zu", size);
    int fds[3] = {0, 1, 2};
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = header, .iov_len = 8};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    ssize_t n;
    while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (errno == EAGAIN && wait_ready(fd, POLLOUT, caller) < 0)
            return -1;
    }
    if (send_all(fd, header + n, 8 - (size_t)n, caller) < 0)
        return -1;
    return send_all(fd, data, size, caller);
}

int main(int argc, char **argv) {
    sigprocmask(SIG_BLOCK, NULL, &unblocked);
    /* Leave the caller's session: a Ctrl-C meant for its terminal never reaches the command.
     * A process group leader cannot; the Python launcher handles that case (setsid -w). */
    if (setsid() < 0)
        run_python_launcher(argv);
    const char *resident = getenv("OFFLINE_PULUMI_RESIDENT");
    if (!resident || (strcasecmp(resident, "1") && strcasecmp(resident, "true") &&
                      strcasecmp(resident, "yes")))
        run_python_launcher(argv);

    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    struct sigaction action = {.sa_handler = record, .sa_mask = blocked};
    sigaction(SIGINT, &action, &previous[0]);
    sigaction(SIGTERM, &action, &previous[1]);
    handling = 1;

    struct sockaddr_un addr;
    if (socket_path(&addr) < 0)
        run_python_launcher(argv);
    /* Non-blocking, so that waiting happens only in ppoll, where signals are handled. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        run_python_launcher(argv);
    /* A resident still importing the engine keeps us in its backlog: connect succeeds. A full
     * backlog (EAGAIN) is left to the Python launcher, which waits for it. */
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        run_python_launcher(argv);
    }
    size_t size = 0;
    char *data = request(argc, argv, &size);
    pid_t caller = getppid();
    /* The resident reads the length as exactly eight digits. */
    char answer[256];
    size_t used = 0;
    if (data && size <= 99999999 && hand_over(fd, data, size, &caller) == 0) {
        for (;;) {
            if (wait_ready(fd, POLLIN, &caller) < 0)
                break;
            char chunk[4096];
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0)
                break;
            /* Two short lines are all there is to keep. */
            size_t room = sizeof answer - 1 - used, keep = (size_t)n < room ? (size_t)n : room;
            memcpy(answer + used, chunk, keep);
            used += keep;
            answer[used] = '\0';
            if (!command && strchr(answer, '\n')) {
                command = (pid_t)atol(answer);
                forward_new();
            }
        }
    }
    close(fd);
    free(data);
    if (command <= 0)
        run_python_launcher(argv); /* or "interrupted", if a signal came */
    char *first = strchr(answer, '\n'), *second = strchr(first + 1, '\n');
    if (second && second > first + 1) {
        char *end;
        long code = strtol(first + 1, &end, 10);
        return end == second ? (int)code : 1;
    }
    /* The command died without a word: die of the signal it was sent, as it did. */
    int signum = nsent ? signal_at(nsent - 1) : SIGKILL;
    signal(signum, SIG_DFL);
    sigprocmask(SIG_SETMASK, &unblocked, NULL);
    kill(getpid(), signum);
    return 128 + signum;
}
