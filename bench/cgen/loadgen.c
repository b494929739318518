/*
 * The C load generator of `make bench`: N OCPP-J 1.6 connections, one outstanding CALL each,
 * on one thread with epoll, so that it is not what limits the fastest servers under test.
 *
 *   bench/cgen/loadgen --url ws://127.0.0.1:9000/ocpp --connections 100 --duration 10
 *
 * It does what `bench/node/loadgen.js` does in its load mode, with the same options and the
 * same output, so the bench runner can use either: every charger opens a WebSocket
 * (subprotocol ocpp1.6), sends BootNotification, then alternates MeterValues (four sampled
 * values, a distinct timestamp per charger per message) and Heartbeat as fast as answers
 * come. CALLs from the server are answered with an empty CALLRESULT. Figures are taken
 * over --duration seconds after --warmup seconds; `{"event":"window_start"}` and
 * `{"event":"window_end"}` lines mark the window, and the last stdout line is a JSON object
 * with the figures and the generator's own CPU use.
 *
 * WebSocket framing per RFC 6455: client frames are masked (§5.3) with a key from a
 * xorshift generator (the key need not be cryptographically strong for a load test on
 * loopback; the server unmasks it either way); server frames are read unmasked, text and
 * binary alike, and pings are answered with pongs (§5.5.2).
 *
 * Standard C and Linux only: no libraries to download.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF 65536
#define WRITE_BUF 16384
#define MAX_LATENCIES 20000000

enum state { CONNECTING, HANDSHAKING, BOOTING, READY, LOADING, CLOSED, FAILED };

struct charger {
    int fd;
    int index;
    enum state state;
    char identity[64];
    unsigned char *in;  /* bytes received and not yet parsed */
    size_t in_len;
    unsigned char out[WRITE_BUF]; /* frames waiting for the socket to drain */
    size_t out_len, out_off;
    double sent_at;      /* when the outstanding CALL went out, 0 when none */
    int outstanding_mv;  /* the outstanding CALL is a MeterValues */
    int alternate;
    long long seq;
    long long last_stamp_ms;
};

static struct {
    char host[256];
    int port;
    char path[512];
    int connections, concurrency, boot;
    double duration, warmup, setup_timeout, call_timeout;
    char prefix[32];
} opt = {"127.0.0.1", 9000, "/ocpp", 100, 200, 1, 10, 3, 120, 30, "BENCH-"};

static struct {
    long connected, booted, setup_failures, call_errors, timeouts, closed_during_load;
    long calls_acked, mv_acked, commands_answered, window_calls;
} stats;

static struct charger *chargers;
static int epoll_fd;
static double window_start = 1e300, window_end = 1e300;
static int loading;
static double *latencies;
static long latency_count;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static long long energy = 1000;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static uint32_t next_mask(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* -- options ------------------------------------------------------------------------------ */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --url ws://HOST:PORT/PATH [--connections N] [--duration S]\n"
            "               [--warmup S] [--prefix P] [--connect-concurrency N]\n"
            "               [--setup-timeout S] [--call-timeout S] [--no-boot]\n"
            "The load mode of bench/node/loadgen.js, in C: one outstanding CALL per charger,\n"
            "MeterValues and Heartbeat alternating; the last stdout line is the JSON result.\n");
    exit(2);
}

static void parse_url(const char *url) {
    if (strncmp(url, "ws://", 5) != 0) usage();
    const char *host = url + 5;
    const char *colon = strchr(host, ':');
    const char *slash = strchr(host, '/');
    if (!colon || !slash || colon > slash) usage();
    snprintf(opt.host, sizeof opt.host, "%.*s", (int)(colon - host), host);
    opt.port = atoi(colon + 1);
    snprintf(opt.path, sizeof opt.path, "%s", slash);
}

static void parse_options(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-boot")) { opt.boot = 0; continue; }
        if (!strcmp(a, "--help") || !v) usage();
        if (!strcmp(a, "--url")) parse_url(v);
        else if (!strcmp(a, "--connections")) opt.connections = atoi(v);
        else if (!strcmp(a, "--duration")) opt.duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--prefix")) snprintf(opt.prefix, sizeof opt.prefix, "%s", v);
        else if (!strcmp(a, "--connect-concurrency")) opt.concurrency = atoi(v);
        else if (!strcmp(a, "--setup-timeout")) opt.setup_timeout = atof(v);
        else if (!strcmp(a, "--call-timeout")) opt.call_timeout = atof(v);
        else usage();
        i++;
    }
    if (opt.concurrency <= 0) opt.concurrency = opt.connections;
}

/* -- sending ------------------------------------------------------------------------------ */

static void watch(struct charger *c, uint32_t events) {
    struct epoll_event e = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl");
}

static void flush(struct charger *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) { watch(c, EPOLLIN | EPOLLOUT); return; }
            c->state = CLOSED;
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    watch(c, EPOLLIN);
}

/* A masked frame (RFC 6455 §5.2, §5.3) of `opcode` carrying `len` bytes of `payload`,
   queued behind what the socket has not taken yet. */
static void send_frame(struct charger *c, int opcode, const char *payload, size_t len) {
    if (c->fd < 0) return;
    size_t header = len < 126 ? 6 : 8;
    if (c->out_len + header + len > WRITE_BUF) {
        if (opcode == 0xA) return; /* a pong may be dropped; the next ping gets one */
        fprintf(stderr, "loadgen: write buffer full\n");
        exit(1);
    }
    unsigned char *p = c->out + c->out_len;
    *p++ = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        *p++ = (unsigned char)(0x80 | len);
    } else {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    }
    uint32_t mask = next_mask();
    unsigned char key[4];
    memcpy(key, &mask, 4);
    memcpy(p, key, 4);
    p += 4;
    /* Eight bytes at a time: the key repeats every four, so twice in a word. */
    uint64_t wide = ((uint64_t)mask << 32) | mask, word;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&word, payload + i, 8);
        word ^= wide;
        memcpy(p + i, &word, 8);
    }
    for (; i < len; i++) p[i] = (unsigned char)payload[i] ^ key[i & 3];
    c->out_len += header + len;
    flush(c);
}

static void send_text(struct charger *c, const char *text, size_t len) {
    send_frame(c, 0x1, text, len);
}

/* An ISO 8601 UTC timestamp with milliseconds, at least 1 ms after the charger's last one:
   csms keeps a repeated sample (same instant, measurand, phase...) once, as a real meter's
   distinct readings would not be. */
static void timestamp(struct charger *c, char *out, size_t size) {
    static time_t cached_second = -1;
    static char cached_prefix[32]; /* "YYYY-MM-DDTHH:MM:SS", formatted once per second */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long long ms = (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    if (ms <= c->last_stamp_ms) ms = c->last_stamp_ms + 1;
    c->last_stamp_ms = ms;
    time_t seconds = (time_t)(ms / 1000);
    if (seconds != cached_second) {
        struct tm tm;
        gmtime_r(&seconds, &tm);
        strftime(cached_prefix, sizeof cached_prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_second = seconds;
    }
    snprintf(out, size, "%s.%03lldZ", cached_prefix, ms % 1000);
}

static void send_boot(struct charger *c) {
    char frame[512];
    int n = snprintf(frame, sizeof frame,
                     "[2,\"b%d\",\"BootNotification\",{\"chargePointVendor\":\"bench\","
                     "\"chargePointModel\":\"loadgen\",\"chargePointSerialNumber\":\"%s\","
                     "\"firmwareVersion\":\"1.0\"}]",
                     c->index, c->identity);
    c->sent_at = now();
    send_text(c, frame, (size_t)n);
}

static void send_next(struct charger *c) {
    char frame[1024];
    int n;
    c->seq++;
    c->alternate ^= 1;
    c->outstanding_mv = c->alternate;
    if (c->alternate) {
        char at[40];
        timestamp(c, at, sizeof at);
        energy++;
        n = snprintf(frame, sizeof frame,
                     "[2,\"%d.%lld\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[{"
                     "\"timestamp\":\"%s\",\"sampledValue\":["
                     "{\"value\":\"%lld\",\"context\":\"Sample.Periodic\","
                     "\"measurand\":\"Energy.Active.Import.Register\",\"unit\":\"Wh\"},"
                     "{\"value\":\"7200\",\"context\":\"Sample.Periodic\","
                     "\"measurand\":\"Power.Active.Import\",\"unit\":\"W\"},"
                     "{\"value\":\"31.4\",\"context\":\"Sample.Periodic\","
                     "\"measurand\":\"Current.Import\",\"phase\":\"L1\",\"unit\":\"A\"},"
                     "{\"value\":\"229.8\",\"context\":\"Sample.Periodic\","
                     "\"measurand\":\"Voltage\",\"phase\":\"L1-N\",\"unit\":\"V\"}]}]}]",
                     c->index, c->seq, at, energy);
    } else {
        n = snprintf(frame, sizeof frame, "[2,\"%d.%lld\",\"Heartbeat\",{}]", c->index, c->seq);
    }
    c->sent_at = now();
    send_text(c, frame, (size_t)n);
}

/* -- receiving ---------------------------------------------------------------------------- */

static void answer_server_call(struct charger *c, const unsigned char *text, size_t len) {
    /* [2,"<id>",...]: answer CALLRESULT {} at once (commands during the load). */
    const unsigned char *q1 = memchr(text, '"', len);
    if (!q1) return;
    const unsigned char *q2 = memchr(q1 + 1, '"', len - (size_t)(q1 + 1 - text));
    if (!q2) return;
    char frame[256];
    int n = snprintf(frame, sizeof frame, "[3,\"%.*s\",{}]", (int)(q2 - q1 - 1), q1 + 1);
    stats.commands_answered++;
    send_text(c, frame, (size_t)n);
}

static void on_answer(struct charger *c, int ok, double t) {
    double sent = c->sent_at;
    c->sent_at = 0;
    if (c->state == BOOTING) {
        if (ok) { c->state = READY; stats.booted++; }
        else { c->state = FAILED; stats.setup_failures++; }
        return;
    }
    if (c->state != LOADING) return;
    if (ok) {
        stats.calls_acked++;
        if (c->outstanding_mv) stats.mv_acked++;
        if (t >= window_start && t < window_end && sent >= window_start) {
            stats.window_calls++;
            if (latency_count < MAX_LATENCIES) latencies[latency_count++] = (t - sent) * 1000;
        }
    } else {
        stats.call_errors++;
    }
    if (loading) send_next(c);
}

static void on_text(struct charger *c, const unsigned char *text, size_t len) {
    size_t i = 0;
    while (i < len && (text[i] == '[' || text[i] == ' ')) i++;
    if (i >= len) return;
    double t = now();
    if (text[i] == '2') { answer_server_call(c, text, len); return; }
    if (c->sent_at == 0) return; /* a late answer to a CALL that timed out */
    int ok = text[i] == '3';
    if (ok && c->state == BOOTING) ok = memmem(text, len, "Accepted", 8) != NULL;
    on_answer(c, ok, t);
}

/* Parse whole frames from c->in; returns 0 when the connection must close. */
static int parse_frames(struct charger *c) {
    size_t off = 0;
    while (c->in_len - off >= 2) {
        unsigned char *f = c->in + off;
        int opcode = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t header = 2;
        if (len == 126) {
            if (c->in_len - off < 4) break;
            len = ((uint64_t)f[2] << 8) | f[3];
            header = 4;
        } else if (len == 127) {
            if (c->in_len - off < 10) break;
            len = 0;
            for (int k = 0; k < 8; k++) len = (len << 8) | f[2 + k];
            header = 10;
        }
        if (len > READ_BUF - 16) { fprintf(stderr, "loadgen: frame of %llu bytes\n",
                                           (unsigned long long)len); return 0; }
        if (c->in_len - off < header + len) break;
        unsigned char *payload = f + header;
        if (opcode == 0x1 || opcode == 0x2) on_text(c, payload, (size_t)len);
        else if (opcode == 0x9) send_frame(c, 0xA, (const char *)payload, (size_t)len);
        else if (opcode == 0x8) return 0;
        off += header + (size_t)len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 1;
}

static void close_charger(struct charger *c, enum state why) {
    if (c->fd >= 0) { epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    if (c->state == LOADING && loading) stats.closed_during_load++;
    if (c->state < READY) stats.setup_failures++;
    c->state = why;
}

static void on_handshake(struct charger *c) {
    unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return;
    if (c->in_len < 12 || memcmp(c->in + 9, "101", 3) != 0) { close_charger(c, FAILED); return; }
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    stats.connected++;
    if (opt.boot) { c->state = BOOTING; send_boot(c); }
    else c->state = READY;
}

static void on_readable(struct charger *c) {
    for (;;) {
        if (c->in_len == READ_BUF) { close_charger(c, FAILED); return; }
        ssize_t n = recv(c->fd, c->in + c->in_len, READ_BUF - c->in_len, 0);
        if (n == 0) { close_charger(c, CLOSED); return; }
        if (n < 0) {
            if (errno == EAGAIN) return;
            close_charger(c, CLOSED);
            return;
        }
        c->in_len += (size_t)n;
        if (c->state == HANDSHAKING) { on_handshake(c); if (c->state == HANDSHAKING) continue; }
        if (c->state != FAILED && c->state != CLOSED && !parse_frames(c)) {
            close_charger(c, CLOSED);
            return;
        }
    }
}

/* -- connecting --------------------------------------------------------------------------- */

static void start_connect(struct charger *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.connections > 5000) {
        /* Beyond ~28,000 ephemeral ports per source address: spread over 127.0.0.x. */
        struct sockaddr_in local = {.sin_family = AF_INET};
        local.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->index % 50));
        bind(fd, (struct sockaddr *)&local, sizeof local);
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &addr.sin_addr);
    c->fd = fd;
    c->state = CONNECTING;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        close_charger(c, FAILED);
}

static void send_upgrade(struct charger *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { close_charger(c, FAILED); return; }
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s/%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
                     opt.path, c->identity, opt.host, opt.port);
    memcpy(c->out, request, (size_t)n);
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->state = HANDSHAKING;
    flush(c);
}

static void dispatch(struct epoll_event *e) {
    struct charger *c = e->data.ptr;
    if (c->fd < 0) return;
    if (c->state == CONNECTING) { send_upgrade(c); return; }
    if (e->events & EPOLLOUT) flush(c);
    if (c->fd >= 0 && (e->events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

static void poll_once(int timeout_ms) {
    struct epoll_event events[512];
    int n = epoll_wait(epoll_fd, events, 512, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) dispatch(&events[i]);
}

static int settled(const struct charger *c) {
    return c->state == READY || c->state == FAILED || c->state == CLOSED;
}

static double set_up_all(void) {
    double begin = now(), deadline = begin + opt.setup_timeout;
    int next = 0, busy = 0;
    for (;;) {
        busy = 0;
        for (int i = 0; i < next; i++) busy += !settled(&chargers[i]);
        while (next < opt.connections && busy < opt.concurrency) {
            start_connect(&chargers[next++]);
            busy++;
        }
        if (next == opt.connections && busy == 0) break;
        if (now() > deadline) { fprintf(stderr, "loadgen: setup timed out\n"); break; }
        poll_once(50);
    }
    return now() - begin;
}

/* -- the load ----------------------------------------------------------------------------- */

static void expire_calls(double t) {
    for (int i = 0; i < opt.connections; i++) {
        struct charger *c = &chargers[i];
        if (c->state == LOADING && c->sent_at && t - c->sent_at > opt.call_timeout) {
            stats.timeouts++;
            c->sent_at = 0;
            send_next(c);
        }
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double q) {
    if (!latency_count) return 0;
    long k = (long)(latency_count * q + 0.999999) - 1;
    if (k < 0) k = 0;
    if (k >= latency_count) k = latency_count - 1;
    return latencies[k];
}

int main(int argc, char **argv) {
    parse_options(argc, argv);
    struct rlimit files = {(rlim_t)opt.connections + 64, (rlim_t)opt.connections + 64};
    setrlimit(RLIMIT_NOFILE, &files);
    epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) die("epoll_create1");
    chargers = calloc((size_t)opt.connections, sizeof *chargers);
    latencies = malloc(sizeof(double) * MAX_LATENCIES);
    if (!chargers || !latencies) die("malloc");
    for (int i = 0; i < opt.connections; i++) {
        struct charger *c = &chargers[i];
        c->fd = -1;
        c->index = i;
        c->in = malloc(READ_BUF);
        if (!c->in) die("malloc");
        snprintf(c->identity, sizeof c->identity, "%s%05d", opt.prefix, i + 1);
    }
    double setup = set_up_all();
    fprintf(stderr, "loadgen: setup: %ld booted, %ld failures in %.2f s\n", stats.booted,
            stats.setup_failures, setup);

    loading = 1;
    double begin = now();
    window_start = begin + opt.warmup;
    window_end = window_start + opt.duration;
    long live = 0;
    for (int i = 0; i < opt.connections; i++) {
        if (chargers[i].state == READY) {
            chargers[i].state = LOADING;
            send_next(&chargers[i]);
            live++;
        }
    }
    int marked_start = 0;
    double cpu_start = 0, wall_start = 0, last_expiry = begin;
    for (;;) {
        double t = now();
        if (!marked_start && t >= window_start) {
            printf("{\"event\":\"window_start\"}\n");
            fflush(stdout);
            cpu_start = cpu_seconds();
            wall_start = now();
            marked_start = 1;
        }
        if (t >= window_end) break;
        if (t - last_expiry > 0.5) { expire_calls(t); last_expiry = t; }
        poll_once(10);
    }
    double cpu = cpu_seconds() - cpu_start, wall = now() - wall_start;
    printf("{\"event\":\"window_end\"}\n");
    fflush(stdout);
    loading = 0;
    /* Let the last answers arrive, so acknowledged counts are final. */
    double drain_until = now() + 5;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < opt.connections; i++)
            pending += chargers[i].state == LOADING && chargers[i].sent_at;
        if (!pending || now() > drain_until) break;
        poll_once(20);
    }
    qsort(latencies, (size_t)latency_count, sizeof(double), by_value);
    printf("{\"mode\":\"load\",\"generator\":\"c\",\"connections\":%d,\"connected\":%ld,"
           "\"booted\":%ld,\"setup_s\":%.3f,\"setup_failures\":%ld,\"failure_reasons\":{},"
           "\"calls\":%ld,\"calls_per_s\":%.1f,\"n\":%ld,\"p50_ms\":%.4f,\"p99_ms\":%.4f,"
           "\"max_ms\":%.4f,\"cpu_pct\":%.1f,\"errors\":{\"CALLERROR\":%ld},\"timeouts\":%ld,"
           "\"closed_during_load\":%ld,\"calls_acked\":%ld,\"meter_values_acked\":%ld,"
           "\"samples_per_meter_values\":4,\"start_transactions\":0,"
           "\"commands_answered\":%ld,\"live\":%ld}\n",
           opt.connections, stats.connected, stats.booted, setup, stats.setup_failures,
           stats.window_calls, stats.window_calls / opt.duration, latency_count,
           percentile(0.5), percentile(0.99), latency_count ? latencies[latency_count - 1] : 0,
           100.0 * cpu / wall, stats.call_errors, stats.timeouts, stats.closed_during_load,
           stats.calls_acked, stats.mv_acked, stats.commands_answered, live);
    return 0;
}
