/*
 * Request/response latency in turns: the benchmark's tcp-rr and udp-rr probe.
 *
 *   rr-probe server tcp|udp PORT SIZE
 *   rr-probe client tcp|udp HOST PORT SIZE
 *
 * The server echoes every message of SIZE bytes back to its sender. The client keeps one
 * connection (one socket for udp) for its whole life and measures only when told: each line
 * it reads on stdin is a number of seconds, for which it sends one message, waits for the
 * whole echo, and sends the next, as sockperf's and netperf's ping-pong do. After the turn it
 * prints one line
 *
 *   <round trips> <lost> <p50 ns> <p99 ns> <mean ns>
 *
 * (nearest-rank percentiles of the turn's round-trip times) and waits for the next line; it
 * ends at end of input. Between turns nothing is sent, so turns of many flows can alternate a
 * tenth of a second apart, each with statistics of its own: sockperf cannot be paused that way
 * (stopped mid-run, it leaves the pause out of its timer and its log).
 *
 * A udp request whose echo has not come within LOSS_TIMEOUT_MS is counted lost; a late echo
 * of it is recognised by its sequence number and ignored.
 *
 * The server listens on both families ([::] with IPV6_V6ONLY off, IPv4 alone where the
 * namespace has no IPv6); HOST is an IPv4 or an IPv6 address.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOSS_TIMEOUT_MS 200
#define MIN_SIZE 8 /* room for the sequence number */
#define MAX_SIZE 65000

static void die(const char *what)
{
    fprintf(stderr, "rr-probe: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 1 when all of buf was read, 0 at end of stream */
static int read_full(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        got += (size_t)n;
    }
    return 1;
}

static int write_full(int fd, const char *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(fd, buf + put, len - put);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        put += (size_t)n;
    }
    return 1;
}

/* a socket bound to PORT on every address of both families, else of IPv4 */
static int bound(int type, int port)
{
    int one = 1, zero = 0;
    int s = socket(AF_INET6, type, 0);
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                                .sin6_addr = IN6ADDR_ANY_INIT};
    if (s >= 0) {
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(s, (struct sockaddr *)&any6, sizeof any6) == 0)
            return s;
        close(s);
    }
    struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    s = socket(AF_INET, type, 0);
    if (s < 0)
        die("socket");
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&any4, sizeof any4) < 0)
        die("bind");
    return s;
}

static void serve_tcp(int port, size_t size)
{
    int one = 1;
    int ls = bound(SOCK_STREAM, port);
    char *buf = malloc(size);
    if (!buf)
        die("malloc");
    if (listen(ls, 4) < 0)
        die("listen");
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (read_full(c, buf, size) && write_full(c, buf, size))
            ;
        close(c);
    }
}

static void serve_udp(int port, size_t size)
{
    int s = bound(SOCK_DGRAM, port);
    char *buf = malloc(size);
    if (!buf)
        die("malloc");
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(s, buf, size, 0, (struct sockaddr *)&from, &fromlen);
        if (n > 0)
            sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* nearest rank: the smallest sample with at least q of all samples at or below it */
static uint64_t percentile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

/* one round trip; its time in ns, or 0 when the request or its echo was lost */
static uint64_t round_trip(int s, int udp, char *out, char *in, size_t size, uint64_t seq)
{
    memcpy(out, &seq, sizeof seq);
    uint64_t start = now_ns();
    if (!udp) {
        if (!write_full(s, out, size) || !read_full(s, in, size)) {
            fprintf(stderr, "rr-probe: the connection ended\n");
            exit(1);
        }
        return now_ns() - start;
    }
    if (send(s, out, size, 0) < 0 && errno != ECONNREFUSED)
        die("send");
    for (;;) {
        uint64_t waited_ms = (now_ns() - start) / 1000000u;
        if (waited_ms >= LOSS_TIMEOUT_MS)
            return 0;
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, (int)(LOSS_TIMEOUT_MS - waited_ms)) <= 0)
            continue;
        ssize_t n = recv(s, in, size, 0);
        uint64_t echoed;
        if (n >= (ssize_t)sizeof echoed) {
            memcpy(&echoed, in, sizeof echoed);
            if (echoed == seq)
                return now_ns() - start;
        }
    }
}

static void client(int udp, const char *host, int port, size_t size)
{
    int one = 1;
    struct sockaddr_in addr4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    struct sockaddr *addr = (struct sockaddr *)&addr4;
    socklen_t addrlen = sizeof addr4;
    if (inet_pton(AF_INET, host, &addr4.sin_addr) != 1) {
        if (inet_pton(AF_INET6, host, &addr6.sin6_addr) != 1) {
            fprintf(stderr, "rr-probe: %s is not an IP address\n", host);
            exit(2);
        }
        addr = (struct sockaddr *)&addr6;
        addrlen = sizeof addr6;
    }
    int s = socket(addr->sa_family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    char *out = calloc(1, size), *in = malloc(size), line[64];
    size_t cap = 1 << 16;
    uint64_t *rtt = malloc(cap * sizeof *rtt), seq = 0;
    if (s < 0 || !out || !in || !rtt)
        die("socket");
    if (!udp)
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, addr, addrlen) < 0)
        die("connect");
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        double seconds = strtod(line, NULL);
        size_t n = 0, lost = 0;
        uint64_t total = 0, deadline = now_ns() + (uint64_t)(seconds * 1e9);
        do {
            uint64_t t = round_trip(s, udp, out, in, size, ++seq);
            if (!t) {
                lost++;
                continue;
            }
            if (n == cap) {
                cap *= 2;
                rtt = realloc(rtt, cap * sizeof *rtt);
                if (!rtt)
                    die("realloc");
            }
            rtt[n++] = t;
            total += t;
        } while (now_ns() < deadline);
        if (!n) {
            printf("0 %zu 0 0 0\n", lost);
            continue;
        }
        qsort(rtt, n, sizeof *rtt, cmp_u64);
        printf("%zu %zu %llu %llu %llu\n", n, lost,
               (unsigned long long)percentile(rtt, n, 0.50),
               (unsigned long long)percentile(rtt, n, 0.99),
               (unsigned long long)(total / n));
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: rr-probe server tcp|udp PORT SIZE\n"
                    "       rr-probe client tcp|udp HOST PORT SIZE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        usage();
    int is_server = !strcmp(argv[1], "server"), udp = !strcmp(argv[2], "udp");
    if ((!is_server && strcmp(argv[1], "client")) || (!udp && strcmp(argv[2], "tcp")))
        usage();
    if (is_server != (argc == 5) || (!is_server && argc != 6))
        usage();
    int port = atoi(argv[is_server ? 3 : 4]);
    long size = atol(argv[is_server ? 4 : 5]);
    if (port < 1 || port > 65535 || size < MIN_SIZE || size > MAX_SIZE) {
        fprintf(stderr, "rr-probe: PORT must be 1-65535 and SIZE %d-%d bytes\n", MIN_SIZE,
                MAX_SIZE);
        exit(2);
    }
    if (is_server)
        udp ? serve_udp(port, (size_t)size) : serve_tcp(port, (size_t)size);
    else
        client(udp, argv[3], port, (size_t)size);
    return 0;
}
