/*
 * The userspace forwarder of the flannel `udp` mode, one per node.
 *
 * Pods' packets to other nodes are routed into the TUN device flannel0. This program reads
 * each IP packet from flannel0, finds the node that owns the destination's subnet, and sends
 * the whole packet as one UDP datagram to that node's port 8285; datagrams arriving on 8285
 * are written back into flannel0. TTL is decremented on the way out, as a router would; a
 * destination in no known subnet gets an ICMP net-unreachable, as flannel's proxy sends.
 *
 * Datagrams that are too short, not IPv4, inconsistent, or from an unknown peer are dropped
 * and counted. The peer table changes at run time through a control socket (no restart):
 *   "add <subnet>/<len> <node-ip>"   "del <subnet>/<len>"   "stats"   (reply: one line)
 *
 * Two threads move packets (TUN->UDP and UDP->TUN) with blocking I/O; UDP is sent and
 * received in batches (sendmmsg/recvmmsg) to spend fewer system calls per packet.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ROUTES 4096
#define BATCH 64
#define MAX_PKT 65536

struct route { uint32_t net, mask; struct sockaddr_in peer; };

static struct route routes[MAX_ROUTES];
static int nroutes;
static pthread_rwlock_t routes_lock = PTHREAD_RWLOCK_INITIALIZER;

static int tun_fd, udp_fd, ctl_fd;
static uint16_t peer_port = 8285;

static struct {
    unsigned long tx_packets, rx_packets, tx_bytes, rx_bytes;
    unsigned long no_route, ttl_expired, too_short, not_ipv4, bad_length, unknown_peer,
                  send_errors, tun_write_errors;
} st;

#define COUNT(field) __atomic_fetch_add(&st.field, 1, __ATOMIC_RELAXED)
#define ADD(field, n) __atomic_fetch_add(&st.field, (n), __ATOMIC_RELAXED)

static void die(const char *what) { perror(what); exit(1); }

static uint16_t checksum(const void *data, size_t len) {
    const uint16_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const uint8_t *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Longest-prefix match of a destination; returns 0 when no subnet holds it. */
static int lookup(uint32_t dst, struct sockaddr_in *out) {
    int found = 0;
    uint32_t best = 0;
    pthread_rwlock_rdlock(&routes_lock);
    for (int i = 0; i < nroutes; i++) {
        if ((dst & routes[i].mask) == routes[i].net && (!found || ntohl(routes[i].mask) > best)) {
            *out = routes[i].peer;
            best = ntohl(routes[i].mask);
            found = 1;
        }
    }
    pthread_rwlock_unlock(&routes_lock);
    return found;
}

static int known_peer(uint32_t addr) {
    int found = 0;
    pthread_rwlock_rdlock(&routes_lock);
    for (int i = 0; i < nroutes && !found; i++)
        found = routes[i].peer.sin_addr.s_addr == addr;
    pthread_rwlock_unlock(&routes_lock);
    return found;
}

/* Returns the reason a buffer is not a well-formed IPv4 packet, or NULL. */
static const char *malformed(const uint8_t *buf, ssize_t len) {
    const struct iphdr *ip = (const struct iphdr *)buf;
    if (len < (ssize_t)sizeof(struct iphdr)) { COUNT(too_short); return "too short"; }
    if (ip->version != 4) { COUNT(not_ipv4); return "not IPv4"; }
    if (ip->ihl < 5 || ip->ihl * 4 > len || ntohs(ip->tot_len) != len) {
        COUNT(bad_length); return "inconsistent length";
    }
    return NULL;
}

/* ICMP destination unreachable / net unreachable back into the TUN, to the sender. As in
 * flannel's proxy, it comes from the unreachable destination itself: a source address of the
 * node's own would be dropped as martian when the kernel reads it from flannel0. */
static void send_net_unreachable(const uint8_t *pkt) {
    const struct iphdr *off = (const struct iphdr *)pkt;
    size_t quoted = off->ihl * 4 + 8;
    uint8_t buf[sizeof(struct iphdr) + sizeof(struct icmphdr) + 60 + 8];
    struct iphdr *ip = (struct iphdr *)buf;
    struct icmphdr *icmp = (struct icmphdr *)(ip + 1);
    if (quoted > ntohs(off->tot_len)) quoted = ntohs(off->tot_len);
    memset(buf, 0, sizeof(buf));
    size_t len = sizeof(*ip) + sizeof(*icmp) + quoted;
    ip->version = 4; ip->ihl = 5; ip->ttl = 64; ip->protocol = IPPROTO_ICMP;
    ip->tot_len = htons(len);
    ip->saddr = off->daddr; ip->daddr = off->saddr;
    icmp->type = ICMP_DEST_UNREACH; icmp->code = ICMP_NET_UNREACH;
    memcpy(icmp + 1, pkt, quoted);
    icmp->checksum = checksum(icmp, sizeof(*icmp) + quoted);
    ip->check = checksum(ip, sizeof(*ip));
    if (write(tun_fd, buf, len) < 0) COUNT(tun_write_errors);
}

/* Decrement TTL with an incremental header checksum update (RFC 1624); 0 if it expired. */
static int decrement_ttl(struct iphdr *ip) {
    if (ip->ttl <= 1) return 0;
    ip->ttl--;
    uint32_t sum = ip->check + htons(0x0100);
    ip->check = (uint16_t)(sum + (sum >> 16));
    return 1;
}

static void *tun_to_udp(void *arg) {
    (void)arg;
    static uint8_t bufs[BATCH][MAX_PKT];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in dst[BATCH];
    for (;;) {
        int n = 0;
        /* block for the first packet, then take what is already queued, up to BATCH */
        while (n < BATCH) {
            ssize_t len = read(tun_fd, bufs[n], MAX_PKT);
            if (len < 0) {
                if (errno == EAGAIN && n > 0) break;
                if (errno == EAGAIN || errno == EINTR) { fd_set r; FD_ZERO(&r); FD_SET(tun_fd, &r);
                    select(tun_fd + 1, &r, NULL, NULL, NULL); continue; }
                die("read tun");
            }
            struct iphdr *ip = (struct iphdr *)bufs[n];
            if (malformed(bufs[n], len)) continue;
            if (!lookup(ip->daddr, &dst[n])) { COUNT(no_route); send_net_unreachable(bufs[n]); continue; }
            if (!decrement_ttl(ip)) { COUNT(ttl_expired); continue; }
            iov[n].iov_base = bufs[n]; iov[n].iov_len = len;
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_iov = &iov[n]; msgs[n].msg_hdr.msg_iovlen = 1;
            msgs[n].msg_hdr.msg_name = &dst[n]; msgs[n].msg_hdr.msg_namelen = sizeof(dst[n]);
            ADD(tx_bytes, len);
            n++;
        }
        for (int off = 0; off < n;) {
            int sent = sendmmsg(udp_fd, msgs + off, n - off, 0);
            if (sent < 0) { if (errno == EINTR) continue; COUNT(send_errors); off++; continue; }
            ADD(tx_packets, sent);
            off += sent;
        }
    }
    return NULL;
}

static void *udp_to_tun(void *arg) {
    (void)arg;
    static uint8_t bufs[BATCH][MAX_PKT];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in src[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i]; iov[i].iov_len = MAX_PKT;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &src[i]; msgs[i].msg_hdr.msg_namelen = sizeof(src[i]);
        }
        int n = recvmmsg(udp_fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) { if (errno == EINTR) continue; die("recvmmsg"); }
        for (int i = 0; i < n; i++) {
            ssize_t len = msgs[i].msg_len;
            if (!known_peer(src[i].sin_addr.s_addr)) { COUNT(unknown_peer); continue; }
            if (malformed(bufs[i], len)) continue;
            if (write(tun_fd, bufs[i], len) < 0) { COUNT(tun_write_errors); continue; }
            COUNT(rx_packets);
            ADD(rx_bytes, len);
        }
    }
    return NULL;
}

static int parse_cidr(const char *text, uint32_t *net, uint32_t *mask) {
    char addr[32];
    int len;
    if (sscanf(text, "%31[0-9.]/%d", addr, &len) != 2 || len < 0 || len > 32) return 0;
    struct in_addr a;
    if (!inet_aton(addr, &a)) return 0;
    *mask = len ? htonl(~0u << (32 - len)) : 0;
    *net = a.s_addr & *mask;
    return 1;
}

static void control(const char *cmd, char *reply, size_t size) {
    char a[64], b[64];
    uint32_t net, mask;
    struct in_addr peer;
    if (sscanf(cmd, "add %63s %63s", a, b) == 2) {
        if (!parse_cidr(a, &net, &mask) || !inet_aton(b, &peer)) {
            snprintf(reply, size, "error: bad route %s via %s", a, b); return;
        }
        pthread_rwlock_wrlock(&routes_lock);
        int i = 0;
        while (i < nroutes && !(routes[i].net == net && routes[i].mask == mask)) i++;
        if (i == nroutes && nroutes == MAX_ROUTES) {
            pthread_rwlock_unlock(&routes_lock);
            snprintf(reply, size, "error: peer table full"); return;
        }
        routes[i].net = net; routes[i].mask = mask;
        routes[i].peer.sin_family = AF_INET; routes[i].peer.sin_port = htons(peer_port);
        routes[i].peer.sin_addr = peer;
        if (i == nroutes) nroutes++;
        pthread_rwlock_unlock(&routes_lock);
        snprintf(reply, size, "ok");
    } else if (sscanf(cmd, "del %63s", a) == 1) {
        if (!parse_cidr(a, &net, &mask)) { snprintf(reply, size, "error: bad subnet %s", a); return; }
        pthread_rwlock_wrlock(&routes_lock);
        for (int i = 0; i < nroutes; i++)
            if (routes[i].net == net && routes[i].mask == mask) { routes[i] = routes[--nroutes]; break; }
        pthread_rwlock_unlock(&routes_lock);
        snprintf(reply, size, "ok");
    } else if (strncmp(cmd, "stats", 5) == 0) {
        snprintf(reply, size,
                 "{\"tx_packets\": %lu, \"rx_packets\": %lu, \"tx_bytes\": %lu, \"rx_bytes\": %lu, "
                 "\"no_route\": %lu, \"ttl_expired\": %lu, \"too_short\": %lu, \"not_ipv4\": %lu, "
                 "\"bad_length\": %lu, \"unknown_peer\": %lu, \"send_errors\": %lu, "
                 "\"tun_write_errors\": %lu, \"peers\": %d}",
                 st.tx_packets, st.rx_packets, st.tx_bytes, st.rx_bytes, st.no_route,
                 st.ttl_expired, st.too_short, st.not_ipv4, st.bad_length, st.unknown_peer,
                 st.send_errors, st.tun_write_errors, nroutes);
    } else {
        snprintf(reply, size, "error: unknown command");
    }
}

static void usage(void) {
    fprintf(stderr, "usage: flannel-udp-forwarder --tun NAME --listen IP --control PATH "
                    "[--port 8285]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *tun = NULL, *listen_ip = NULL, *ctl_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tun")) tun = argv[i + 1];
        else if (!strcmp(argv[i], "--listen")) listen_ip = argv[i + 1];
        else if (!strcmp(argv[i], "--control")) ctl_path = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) peer_port = (uint16_t)atoi(argv[i + 1]);
        else usage();
    }
    if (!tun || !listen_ip || !ctl_path) usage();
    signal(SIGPIPE, SIG_IGN);

    /* attach to the persistent TUN device the testbed created */
    if ((tun_fd = open("/dev/net/tun", O_RDWR)) < 0) die("open /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, tun, IFNAMSIZ - 1);
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
    fcntl(tun_fd, F_SETFL, fcntl(tun_fd, F_GETFL) | O_NONBLOCK);

    if ((udp_fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0) die("socket udp");
    int size = 8 << 20;
    setsockopt(udp_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    setsockopt(udp_fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(peer_port) };
    if (!inet_aton(listen_ip, &sin.sin_addr)) usage();
    if (bind(udp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) die("bind udp");

    if ((ctl_fd = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0) die("socket control");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strncpy(sun.sun_path, ctl_path, sizeof(sun.sun_path) - 1);
    unlink(ctl_path);
    if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) die("bind control");

    pthread_t t1, t2;
    pthread_create(&t1, NULL, tun_to_udp, NULL);
    pthread_create(&t2, NULL, udp_to_tun, NULL);
    fprintf(stderr, "forwarding %s <-> %s:%u\n", tun, listen_ip, peer_port);

    for (;;) {
        char cmd[256], reply[1024];
        struct sockaddr_un from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(ctl_fd, cmd, sizeof(cmd) - 1, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) { if (errno == EINTR) continue; die("recvfrom control"); }
        cmd[n] = 0;
        control(cmd, reply, sizeof(reply));
        sendto(ctl_fd, reply, strlen(reply), 0, (struct sockaddr *)&from, fromlen);
    }
}
