/*
 * The userspace forwarder of the flannel `udp` mode, one per node.
 *
 * Pods' packets to other nodes are routed into the TUN device flannel0. This program reads
 * each IP packet from flannel0, finds the node that owns the destination's subnet, and sends
 * the whole packet as one UDP datagram to that node's port 8285; datagrams arriving on 8285
 * are written back into flannel0. As flannel's proxy (backend/udp/proxy_amd64.c) does:
 * - the TTL is decremented on both paths, TUN to UDP and UDP to TUN, and a packet whose TTL
 *   reaches 0 is discarded;
 * - a destination in no known subnet gets an ICMP net-unreachable written into flannel0, from
 *   flannel0's own address (--tun-addr) with TTL 8, except for an ICMP packet (RFC 792: no ICMP
 *   about ICMP) and for a fragment other than the first; the node's kernel, reading a packet
 *   from flannel0 whose source is one of its own addresses, drops it as a martian, as on a
 *   flannel node;
 * - without offloads (--no-offload, the udp mode's default), one read and one sendto per
 *   packet out, one recv and one write per packet in, in one loop that polls, then moves
 *   packets in both directions until neither has any, with the kernel's default socket
 *   buffers and a non-blocking UDP socket (flanneld's, from Go, is): a datagram the socket
 *   has no room for is dropped (counted as a send error), not waited for.
 * What this program adds for robustness changes nothing for valid traffic: datagrams that are
 * too short, not IPv4, of inconsistent length or from an unknown peer are dropped and counted
 * (flannel's would write them into flannel0). The peer table changes at run time through a
 * control socket (no restart):
 *   "add <subnet>/<len> <node-ip>"   "del <subnet>/<len>"   "stats"   (reply: one line)
 *
 * Offloads (the udp-gso mode): the wire format stays flannel's, one inner packet of at
 * most flannel0's MTU per datagram, but the packets cross the kernel boundary in bundles, as
 * a virtio NIC's do. flannel0 hands over TCP super-packets (TSO, with a virtio-net header);
 * the forwarder cuts them into MTU-sized TCP segments with their own checksums and sends the
 * segments with one system call (UDP GSO). The receiver takes bundles of datagrams (UDP GRO),
 * joins consecutive segments of one TCP flow back into one super-packet as the kernel's GRO
 * would, and writes that into flannel0, with sendmmsg/recvmmsg batches and 8 MB socket
 * buffers: what a modern userspace tunnel (wireguard-go, Tailscale) does over a wire format.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ROUTES 4096
#define BATCH 16            /* TUN reads per send batch; datagram bundles per receive */
#define MAX_PKT 65536
#define MAX_SEGS 64         /* UDP GSO and our GRO: at most this many datagrams per bundle */
#define MAX_UDP_PAYLOAD 65507
#define MAX_CUT 128         /* segments of one TCP super-packet (64 KB at an MSS of 512) */
#define MAX_HDR 120         /* IP and TCP headers, options included, at most */
#define VNET_LEN ((int)sizeof(struct virtio_net_hdr))
#define TCP_CWR 0x80        /* TCP flags byte: congestion window reduced */

struct route { uint32_t net, mask; struct sockaddr_in peer; };

static struct route routes[MAX_ROUTES];
static int nroutes;

static int tun_fd, udp_fd, ctl_fd;
static uint16_t peer_port = 8285;
static uint32_t tun_addr;   /* flannel0's own address: the source of our ICMP messages */
static int offload = 1;     /* TUN I/O carries virtio-net headers; UDP GSO/GRO on */

static struct {
    unsigned long tx_packets, rx_packets, tx_bytes, rx_bytes, tx_bundles, rx_bundles;
    unsigned long no_route, icmp_sent, ttl_expired, too_short, not_ipv4, bad_length,
                  unknown_peer, bad_offload, send_errors, tun_write_errors;
} st;

#define COUNT(field) (st.field++)
#define ADD(field, n) (st.field += (n))

static void die(const char *what) { perror(what); exit(1); }

/* --- checksums (RFC 1071), summed in host order, which the folded result tolerates ------- */
static uint64_t sum_bytes(const uint8_t *p, size_t len, uint64_t sum) {
    /* 64-bit words into a 128-bit accumulator: the carries are kept in its upper half */
    unsigned __int128 acc = sum;
    for (; len >= 32; p += 32, len -= 32) {
        uint64_t w[4];
        memcpy(w, p, sizeof(w));
        acc += w[0]; acc += w[1]; acc += w[2]; acc += w[3];
    }
    uint64_t low = (uint64_t)acc, high = (uint64_t)(acc >> 64);
    low += high;
    if (low < high) low++;                        /* end-around carry */
    sum = (low & 0xffffffff) + (low >> 32);       /* at most 33 bits: room for the tail */
    for (; len >= 4; p += 4, len -= 4) { uint32_t w; memcpy(&w, p, 4); sum += w; }
    if (len >= 2) { uint16_t w; memcpy(&w, p, 2); sum += w; p += 2; len -= 2; }
    if (len) sum += *p;
    return sum;
}

static uint16_t fold(uint64_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

static uint16_t checksum(const void *data, size_t len) { return ~fold(sum_bytes(data, len, 0)); }

static uint64_t pseudo_header_sum(const struct iphdr *ip, uint16_t l4_len) {
    return (uint64_t)(ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) +
           (ip->daddr >> 16) + htons(ip->protocol) + htons(l4_len);
}

/* --- peer table ---------------------------------------------------------------------------- */
/* Longest-prefix match of a destination; returns 0 when no subnet holds it. */
static int lookup(uint32_t dst, struct sockaddr_in *out) {
    int found = 0;
    uint32_t best = 0;
    for (int i = 0; i < nroutes; i++) {
        if ((dst & routes[i].mask) == routes[i].net && (!found || ntohl(routes[i].mask) > best)) {
            *out = routes[i].peer;
            best = ntohl(routes[i].mask);
            found = 1;
        }
    }
    return found;
}

static int known_peer(uint32_t addr) {
    int found = 0;
    for (int i = 0; i < nroutes && !found; i++)
        found = routes[i].peer.sin_addr.s_addr == addr;
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

/* --- flannel0 ------------------------------------------------------------------------------ */
/* Writes one packet; with offloads a virtio-net header goes first (all zero: a plain packet
 * whose checksums are complete). */
static int tun_write_plain(const uint8_t *pkt, size_t len) {
    static const struct virtio_net_hdr none;
    struct iovec iov[2] = { { (void *)&none, VNET_LEN }, { (void *)pkt, len } };
    ssize_t n = offload ? writev(tun_fd, iov, 2) : write(tun_fd, pkt, len);
    if (n < 0) COUNT(tun_write_errors);
    return n >= 0;
}

/* ICMP destination unreachable / net unreachable back into the TUN, to the sender, as
 * flannel's proxy writes it: from flannel0's own address, TTL 8, quoting the offender's IP
 * header and 8 bytes of its payload; never about an ICMP packet (RFC 792) nor about a fragment
 * other than the first. */
static void send_net_unreachable(const uint8_t *pkt) {
    const struct iphdr *off = (const struct iphdr *)pkt;
    if (off->protocol == IPPROTO_ICMP || (off->frag_off & htons(0x1fff))) return;
    size_t quoted = off->ihl * 4 + 8;
    uint8_t buf[sizeof(struct iphdr) + sizeof(struct icmphdr) + 60 + 8];
    struct iphdr *ip = (struct iphdr *)buf;
    struct icmphdr *icmp = (struct icmphdr *)(ip + 1);
    if (quoted > ntohs(off->tot_len)) quoted = ntohs(off->tot_len);
    memset(buf, 0, sizeof(buf));
    size_t len = sizeof(*ip) + sizeof(*icmp) + quoted;
    ip->version = 4; ip->ihl = 5; ip->ttl = 8; ip->protocol = IPPROTO_ICMP;
    ip->tot_len = htons(len);
    ip->saddr = tun_addr; ip->daddr = off->saddr;
    icmp->type = ICMP_DEST_UNREACH; icmp->code = ICMP_NET_UNREACH;
    memcpy(icmp + 1, pkt, quoted);
    icmp->checksum = checksum(icmp, sizeof(*icmp) + quoted);
    ip->check = checksum(ip, sizeof(*ip));
    if (tun_write_plain(buf, len)) COUNT(icmp_sent);
}

/* Decrement TTL with an incremental header checksum update (RFC 1624); 0 if it expired. */
static int decrement_ttl(struct iphdr *ip) {
    if (ip->ttl <= 1) return 0;
    ip->ttl--;
    uint32_t sum = ip->check + htons(0x0100);
    ip->check = (uint16_t)(sum + (sum >> 16));
    return 1;
}

/* The checks every packet from flannel0 passes, as flannel's tun_to_udp makes them: a
 * well-formed packet, a peer owning its destination (else ICMP net-unreachable), TTL left.
 * Returns 1 with *dst set when the packet is to be sent. */
static int route_out(uint8_t *pkt, ssize_t len, struct sockaddr_in *dst) {
    struct iphdr *ip = (struct iphdr *)pkt;
    if (malformed(pkt, len)) return 0;
    if (!lookup(ip->daddr, dst)) { COUNT(no_route); send_net_unreachable(pkt); return 0; }
    if (!decrement_ttl(ip)) { COUNT(ttl_expired); return 0; }
    return 1;
}

/* The checks every packet from a peer passes before flannel0, as flannel's udp_to_tun makes
 * them: a well-formed packet, TTL left. Returns 1 when it is to be written. */
static int accept_in(uint8_t *pkt, ssize_t len) {
    if (malformed(pkt, len)) return 0;
    ADD(rx_bytes, len);
    if (!decrement_ttl((struct iphdr *)pkt)) { COUNT(ttl_expired); return 0; }
    return 1;
}

/* --- sending: TUN -> UDP -------------------------------------------------------------------- */
/* A packet whose transport checksum the kernel left to us (virtio NEEDS_CSUM): the field holds
 * the pseudo-header sum; summing from csum_start to the end completes it. */
static int complete_checksum(uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh) {
    size_t at = (size_t)vh->csum_start + vh->csum_offset;
    if (vh->csum_start >= len || at + 2 > len) return 0;
    uint16_t c = ~fold(sum_bytes(pkt + vh->csum_start, len - vh->csum_start, 0));
    if (c == 0 && pkt[9] == IPPROTO_UDP) c = 0xffff;
    memcpy(pkt + at, &c, 2);
    return 1;
}

/* The segments of one super-packet: their headers here, their payloads left where they were
 * read, so that the kernel's copy into the UDP socket is the only one. */
struct cut {
    uint8_t hdrs[MAX_CUT][MAX_HDR];
    struct iovec iov[2 * MAX_CUT];   /* header, payload, header, payload, ... */
};

/* Cuts a TCP super-packet into packets of at most mss payload bytes each, as the kernel's
 * TCP segmentation does: IP ids counting up, sequence numbers advancing, FIN and PSH on the
 * last segment only, CWR on the first only, every checksum complete. Returns the number of
 * segments (0 if the packet is not one we can cut); *seg_len is the length of each but the
 * last. */
static int segment_tcp(const uint8_t *pkt, size_t len, unsigned mss, struct cut *cut,
                       size_t *seg_len) {
    const struct iphdr *ip = (const struct iphdr *)pkt;
    size_t ihl = ip->ihl * 4;
    if (ip->protocol != IPPROTO_TCP || len < ihl + sizeof(struct tcphdr) || mss == 0) return 0;
    const struct tcphdr *th = (const struct tcphdr *)(pkt + ihl);
    size_t hdr = ihl + th->doff * 4;
    if (th->doff < 5 || hdr > len || hdr > MAX_HDR) return 0;
    size_t payload = len - hdr;
    int n = (int)((payload + mss - 1) / mss);
    if (n < 1 || n > MAX_CUT) return 0;
    *seg_len = hdr + mss;
    for (int i = 0; i < n; i++) {
        size_t take = i == n - 1 ? payload - (size_t)i * mss : mss;
        const uint8_t *data = pkt + hdr + (size_t)i * mss;
        uint8_t *seg = cut->hdrs[i];
        memcpy(seg, pkt, hdr);
        struct iphdr *sip = (struct iphdr *)seg;
        struct tcphdr *sth = (struct tcphdr *)(seg + ihl);
        sip->tot_len = htons(hdr + take);
        sip->id = htons(ntohs(ip->id) + i);
        sip->check = 0;
        sip->check = checksum(sip, ihl);
        sth->seq = htonl(ntohl(th->seq) + (uint32_t)(i * mss));
        uint8_t *flags = seg + ihl + 13;
        if (i != n - 1) *flags &= ~(TH_FIN | TH_PUSH);
        if (i != 0) *flags &= ~TCP_CWR;
        sth->check = 0;
        uint64_t sum = sum_bytes(seg + ihl, hdr - ihl, pseudo_header_sum(sip, hdr - ihl + take));
        sth->check = ~fold(sum_bytes(data, take, sum));
        cut->iov[2 * i] = (struct iovec){ seg, hdr };
        cut->iov[2 * i + 1] = (struct iovec){ (void *)data, take };
    }
    return n;
}

/* A batch of datagrams for sendmmsg; a bundle of equal-length datagrams is one message with
 * a UDP_SEGMENT control message. */
#define BATCH_MSGS (BATCH * 3)
struct send_batch {
    struct mmsghdr msgs[BATCH_MSGS];
    struct iovec plain[BATCH_MSGS];
    struct sockaddr_in dst[BATCH_MSGS];
    union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl[BATCH_MSGS];
    int n, packets[BATCH_MSGS];
};

static void queue(struct send_batch *b, struct iovec *iov, size_t iovcnt, size_t bytes,
                  int count, uint16_t seg_len, const struct sockaddr_in *dst) {
    int i = b->n++;
    b->dst[i] = *dst;
    memset(&b->msgs[i], 0, sizeof(b->msgs[i]));
    struct msghdr *m = &b->msgs[i].msg_hdr;
    m->msg_iov = iov; m->msg_iovlen = iovcnt;
    m->msg_name = &b->dst[i]; m->msg_namelen = sizeof(b->dst[i]);
    b->packets[i] = count;
    if (count > 1) {
        m->msg_control = b->ctl[i].buf; m->msg_controllen = sizeof(b->ctl[i].buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(m);
        c->cmsg_level = SOL_UDP; c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &seg_len, sizeof(seg_len));
        COUNT(tx_bundles);
    }
    ADD(tx_bytes, bytes);
}

static void flush(struct send_batch *b) {
    for (int off = 0; off < b->n;) {
        int sent = sendmmsg(udp_fd, b->msgs + off, b->n - off, 0);
        if (sent < 0) {
            if (errno == EINTR) continue;
            COUNT(send_errors); off++; continue;
        }
        for (int i = off; i < off + sent; i++) ADD(tx_packets, b->packets[i]);
        off += sent;
    }
    b->n = 0;
}

/* Queues one packet read from the TUN (after its virtio-net header, if any). */
static void forward_out(struct send_batch *b, uint8_t *pkt, size_t len,
                        const struct virtio_net_hdr *vh, struct cut *cut) {
    struct sockaddr_in dst;
    if (!route_out(pkt, len, &dst)) return;
    uint8_t gso = vh ? vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN : VIRTIO_NET_HDR_GSO_NONE;
    if (gso == VIRTIO_NET_HDR_GSO_NONE) {
        if (vh && (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !complete_checksum(pkt, len, vh)) {
            COUNT(bad_offload); return;
        }
        b->plain[b->n] = (struct iovec){ pkt, len };
        queue(b, &b->plain[b->n], 1, len, 1, 0, &dst);
        return;
    }
    size_t seg_len;
    int n = gso == VIRTIO_NET_HDR_GSO_TCPV4 ? segment_tcp(pkt, len, vh->gso_size, cut, &seg_len) : 0;
    if (n == 0) { COUNT(bad_offload); return; }
    /* one UDP send holds at most MAX_SEGS datagrams and 64 KB: split evenly */
    int max_per_send = MAX_UDP_PAYLOAD / (int)seg_len;
    if (max_per_send > MAX_SEGS) max_per_send = MAX_SEGS;
    int sends = (n + max_per_send - 1) / max_per_send, per_send = (n + sends - 1) / sends;
    for (int first = 0; first < n; first += per_send) {
        int count = n - first < per_send ? n - first : per_send;
        size_t bytes = 0;
        for (int i = first; i < first + count; i++)
            bytes += cut->iov[2 * i].iov_len + cut->iov[2 * i + 1].iov_len;
        queue(b, &cut->iov[2 * first], 2 * (size_t)count, bytes, count, (uint16_t)seg_len, &dst);
    }
}

/* Forwards what flannel0 holds now, up to BATCH packets; returns how many were read. */
static int tun_to_udp(void) {
    static uint8_t bufs[BATCH][VNET_LEN + MAX_PKT];
    static struct cut cuts[BATCH];
    static struct send_batch batch;
    int head = offload ? VNET_LEN : 0, reads = 0;
    while (reads < BATCH) {
        ssize_t len = read(tun_fd, bufs[reads], sizeof(bufs[reads]));
        if (len < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            die("read tun");
        }
        if (len < head) { COUNT(bad_offload); continue; }
        const struct virtio_net_hdr *vh = offload ? (const struct virtio_net_hdr *)bufs[reads] : NULL;
        forward_out(&batch, bufs[reads] + head, len - head, vh, &cuts[reads]);
        reads++;
    }
    flush(&batch);
    return reads;
}

/* --- receiving: UDP -> TUN ------------------------------------------------------------------ */
/* Consecutive segments of one TCP flow, joined back into one super-packet for flannel0. */
struct joined {
    const uint8_t *head;            /* first segment: its headers are the super-packet's */
    size_t head_len, hdr_len, payload, last;
    unsigned mss, count;
    uint32_t next_seq;
    int psh;
    struct iovec iov[2 + MAX_SEGS];  /* virtio header, IP and TCP headers, payloads */
};

static int plain_tcp_segment(const uint8_t *pkt, size_t len, size_t *hdr_len) {
    const struct iphdr *ip = (const struct iphdr *)pkt;
    if (ip->ihl != 5 || ip->protocol != IPPROTO_TCP || (ntohs(ip->frag_off) & 0x3fff)) return 0;
    if (len < 40) return 0;
    const struct tcphdr *th = (const struct tcphdr *)(pkt + 20);
    *hdr_len = 20 + th->doff * 4;
    if (th->doff < 5 || *hdr_len >= len) return 0;   /* no payload: nothing to join */
    /* only ACK, optionally PSH: SYN, FIN, RST, URG and ECN signals travel on their own */
    return (pkt[20 + 13] & ~TH_PUSH) == TH_ACK;
}

/* Whether pkt continues the joined packet: same addresses, ports, IP and TCP header fields
 * apart from the length, id, checksum and sequence, the next sequence number, and no more
 * payload than the first segment carried (a shorter one ends the run). */
static int continues(const struct joined *j, const uint8_t *pkt, size_t len, size_t hdr_len) {
    const struct iphdr *a = (const struct iphdr *)j->head, *b = (const struct iphdr *)pkt;
    const struct tcphdr *ta = (const struct tcphdr *)(j->head + 20), *tb = (const struct tcphdr *)(pkt + 20);
    size_t payload = len - hdr_len;
    return hdr_len == j->hdr_len && a->saddr == b->saddr && a->daddr == b->daddr &&
           a->tos == b->tos && a->ttl == b->ttl && a->frag_off == b->frag_off &&
           ta->source == tb->source && ta->dest == tb->dest && ta->ack_seq == tb->ack_seq &&
           ta->window == tb->window && ntohl(tb->seq) == j->next_seq && !j->psh &&
           payload <= j->mss && j->payload + payload <= 65535 - hdr_len &&
           j->count < MAX_SEGS &&
           memcmp(j->head + 40, pkt + 40, hdr_len - 40) == 0 &&   /* TCP options */
           j->last == j->mss;   /* every segment so far was full */
}

static void write_joined(struct joined *j) {
    if (j->count == 0) return;
    if (j->count == 1) {
        if (tun_write_plain(j->head, j->head_len)) ADD(rx_packets, 1);
        j->count = 0;
        return;
    }
    uint8_t hdr[60];
    struct virtio_net_hdr vh = {
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
        .hdr_len = j->hdr_len, .gso_size = j->mss, .csum_start = 20, .csum_offset = 16,
    };
    memcpy(hdr, j->head, j->hdr_len);
    struct iphdr *ip = (struct iphdr *)hdr;
    struct tcphdr *th = (struct tcphdr *)(hdr + 20);
    ip->tot_len = htons(j->hdr_len + j->payload);
    ip->check = 0;
    ip->check = checksum(ip, 20);
    th->psh = j->psh;
    /* left for the kernel to finish: the pseudo-header sum, as a NIC's TSO expects it */
    th->check = fold(pseudo_header_sum(ip, j->hdr_len - 20 + j->payload));
    j->iov[0] = (struct iovec){ &vh, VNET_LEN };
    j->iov[1] = (struct iovec){ hdr, j->hdr_len };
    if (writev(tun_fd, j->iov, 2 + j->count) < 0) COUNT(tun_write_errors);
    else { ADD(rx_packets, j->count); COUNT(rx_bundles); }
    j->count = 0;
}

/* Takes one datagram's packet: joins it to the current run or writes what came before. */
static void forward_in(struct joined *j, const uint8_t *pkt, size_t len) {
    size_t hdr_len;
    if (!offload || !plain_tcp_segment(pkt, len, &hdr_len)) {
        write_joined(j);
        if (tun_write_plain(pkt, len)) ADD(rx_packets, 1);
        return;
    }
    const struct tcphdr *th = (const struct tcphdr *)(pkt + 20);
    if (j->count && !continues(j, pkt, len, hdr_len)) write_joined(j);
    if (j->count == 0) {
        j->head = pkt; j->head_len = len; j->hdr_len = hdr_len;
        j->mss = len - hdr_len; j->payload = 0; j->psh = 0;
        j->next_seq = ntohl(th->seq);
    }
    j->iov[2 + j->count] = (struct iovec){ (void *)(pkt + hdr_len), len - hdr_len };
    j->count++;
    j->last = len - hdr_len;
    j->payload += j->last;
    j->next_seq += j->last;
    j->psh = th->psh;
}

/* Forwards the datagrams waiting on the UDP socket, up to BATCH bundles; returns how many. */
static int udp_to_tun(void) {
    static uint8_t bufs[BATCH][MAX_PKT];
    static union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl[BATCH];
    static struct joined joined;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in src[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i]; iov[i].iov_len = MAX_PKT;
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &src[i]; msgs[i].msg_hdr.msg_namelen = sizeof(src[i]);
        msgs[i].msg_hdr.msg_control = ctl[i].buf; msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
    }
    int n = recvmmsg(udp_fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        die("recvmmsg");
    }
    for (int i = 0; i < n; i++) {
        size_t len = msgs[i].msg_len, seg = len;
        if (!known_peer(src[i].sin_addr.s_addr)) { COUNT(unknown_peer); continue; }
        /* a bundle (UDP GRO) holds datagrams of seg bytes each, the last maybe shorter */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                int size; memcpy(&size, CMSG_DATA(c), sizeof(size));
                if (size > 0) seg = (size_t)size;
            }
        for (size_t off = 0; off < len; off += seg) {
            size_t this_len = len - off < seg ? len - off : seg;
            if (accept_in(bufs[i] + off, this_len)) forward_in(&joined, bufs[i] + off, this_len);
        }
    }
    write_joined(&joined);   /* a run may span bundles; the buffers are reused by the next call */
    return n;
}

/* --- flannel's loop: one packet per system call ------------------------------------------- */
static void serve_control(void);

/* One packet from flannel0 to its peer: read, route, TTL, sendto. Returns 1 if one was read. */
static int tun_to_udp_one(uint8_t *buf, size_t size) {
    ssize_t len = read(tun_fd, buf, size);
    if (len < 0) {
        if (errno != EAGAIN && errno != EINTR) die("read tun");
        return 0;
    }
    struct sockaddr_in dst;
    if (!route_out(buf, len, &dst)) return 1;
    if (sendto(udp_fd, buf, len, 0, (struct sockaddr *)&dst, sizeof(dst)) != len)
        COUNT(send_errors);
    else { ADD(tx_packets, 1); ADD(tx_bytes, len); }
    return 1;
}

/* One datagram from a peer into flannel0: recv, TTL, write. Returns 1 if one was received. */
static int udp_to_tun_one(uint8_t *buf, size_t size) {
    struct sockaddr_in src;
    socklen_t srclen = sizeof(src);
    ssize_t len = recvfrom(udp_fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)&src, &srclen);
    if (len < 0) {
        if (errno != EAGAIN && errno != EINTR) die("recv udp");
        return 0;
    }
    if (!known_peer(src.sin_addr.s_addr)) { COUNT(unknown_peer); return 1; }
    if (!accept_in(buf, len)) return 1;
    if (tun_write_plain(buf, len)) ADD(rx_packets, 1);
    return 1;
}

/* flannel's run_proxy: sleep in poll(); on traffic, move packets both ways, one at a time,
 * until neither direction has any; the control socket is read when poll() says so. */
static void run_flannel_loop(void) {
    static uint8_t buf[MAX_PKT];
    struct pollfd fds[3] = { { tun_fd, POLLIN, 0 }, { udp_fd, POLLIN, 0 }, { ctl_fd, POLLIN, 0 } };
    for (;;) {
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[2].revents & POLLIN) serve_control();
        if ((fds[0].revents | fds[1].revents) & POLLIN)
            while (tun_to_udp_one(buf, sizeof(buf)) + udp_to_tun_one(buf, sizeof(buf)))
                ;
    }
}

/* --- control socket ------------------------------------------------------------------------- */
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
        int i = 0;
        while (i < nroutes && !(routes[i].net == net && routes[i].mask == mask)) i++;
        if (i == nroutes && nroutes == MAX_ROUTES) {
            snprintf(reply, size, "error: peer table full"); return;
        }
        routes[i].net = net; routes[i].mask = mask;
        routes[i].peer.sin_family = AF_INET; routes[i].peer.sin_port = htons(peer_port);
        routes[i].peer.sin_addr = peer;
        if (i == nroutes) nroutes++;
        snprintf(reply, size, "ok");
    } else if (sscanf(cmd, "del %63s", a) == 1) {
        if (!parse_cidr(a, &net, &mask)) { snprintf(reply, size, "error: bad subnet %s", a); return; }
        for (int i = 0; i < nroutes; i++)
            if (routes[i].net == net && routes[i].mask == mask) { routes[i] = routes[--nroutes]; break; }
        snprintf(reply, size, "ok");
    } else if (strncmp(cmd, "stats", 5) == 0) {
        snprintf(reply, size,
                 "{\"offload\": %s, \"tx_packets\": %lu, \"rx_packets\": %lu, \"tx_bytes\": %lu, "
                 "\"rx_bytes\": %lu, \"tx_bundles\": %lu, \"rx_bundles\": %lu, \"no_route\": %lu, "
                 "\"icmp_sent\": %lu, "
                 "\"ttl_expired\": %lu, \"too_short\": %lu, \"not_ipv4\": %lu, \"bad_length\": %lu, "
                 "\"unknown_peer\": %lu, \"bad_offload\": %lu, \"send_errors\": %lu, "
                 "\"tun_write_errors\": %lu, \"peers\": %d}",
                 offload ? "true" : "false", st.tx_packets, st.rx_packets, st.tx_bytes,
                 st.rx_bytes, st.tx_bundles, st.rx_bundles, st.no_route, st.icmp_sent, st.ttl_expired,
                 st.too_short, st.not_ipv4, st.bad_length, st.unknown_peer, st.bad_offload,
                 st.send_errors, st.tun_write_errors, nroutes);
    } else {
        snprintf(reply, size, "error: unknown command");
    }
}

/* Answers the command waiting on the control socket, if any. */
static void serve_control(void) {
    char cmd[256], reply[1024];
    struct sockaddr_un from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(ctl_fd, cmd, sizeof(cmd) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        die("recvfrom control");
    }
    cmd[n] = 0;
    control(cmd, reply, sizeof(reply));
    sendto(ctl_fd, reply, strlen(reply), 0, (struct sockaddr *)&from, fromlen);
}

static void usage(void) {
    fprintf(stderr, "usage: flannel-udp-forwarder --tun NAME --tun-addr IP --listen IP "
                    "--control PATH [--port 8285] [--no-offload]\n");
    exit(2);
}

/* Attaches to the persistent TUN device the testbed created; with offloads, asks it for
 * checksum-less and TSO packets behind virtio-net headers. */
static void open_tun(const char *name) {
    if ((tun_fd = open("/dev/net/tun", O_RDWR)) < 0) die("open /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
    unsigned features = offload ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN : 0;
    if (ioctl(tun_fd, TUNSETOFFLOAD, features) < 0) die("TUNSETOFFLOAD");
    fcntl(tun_fd, F_SETFL, fcntl(tun_fd, F_GETFL) | O_NONBLOCK);
}

static void open_udp(const char *listen_ip) {
    if ((udp_fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0) die("socket udp");
    if (offload) {   /* flannel keeps the kernel's default buffers; the bundles need room */
        int size = 8 << 20, on = 1;
        setsockopt(udp_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        setsockopt(udp_fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        if (setsockopt(udp_fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) < 0) die("UDP_GRO");
    }
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(peer_port) };
    if (!inet_aton(listen_ip, &sin.sin_addr)) usage();
    if (bind(udp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) die("bind udp");
}

int main(int argc, char **argv) {
    const char *tun = NULL, *listen_ip = NULL, *ctl_path = NULL, *tun_ip = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-offload")) { offload = 0; continue; }
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--tun")) tun = argv[++i];
        else if (!strcmp(argv[i], "--listen")) listen_ip = argv[++i];
        else if (!strcmp(argv[i], "--tun-addr")) tun_ip = argv[++i];
        else if (!strcmp(argv[i], "--control")) ctl_path = argv[++i];
        else if (!strcmp(argv[i], "--port")) peer_port = (uint16_t)atoi(argv[++i]);
        else usage();
    }
    struct in_addr a;
    if (!tun || !listen_ip || !ctl_path || !tun_ip || !inet_aton(tun_ip, &a)) usage();
    tun_addr = a.s_addr;
    signal(SIGPIPE, SIG_IGN);
    open_tun(tun);
    open_udp(listen_ip);

    if ((ctl_fd = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0) die("socket control");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strncpy(sun.sun_path, ctl_path, sizeof(sun.sun_path) - 1);
    unlink(ctl_path);
    if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) die("bind control");

    fprintf(stderr, "forwarding %s <-> %s:%u, %s\n", tun, listen_ip, peer_port,
            offload ? "offloads on (bundles)" : "flannel's loop (one packet per system call)");
    if (!offload) {
        fcntl(udp_fd, F_SETFL, fcntl(udp_fd, F_GETFL) | O_NONBLOCK);
        run_flannel_loop();
    }
    /* One thread, as flannel's proxy: while traffic flows it finds the other direction's
     * packets (a TCP flow's ACKs) waiting without being woken for them; it sleeps in poll()
     * only when nothing is queued. The control socket is looked at between rounds. */
    struct pollfd fds[3] = { { tun_fd, POLLIN, 0 }, { udp_fd, POLLIN, 0 }, { ctl_fd, POLLIN, 0 } };
    for (unsigned round = 1;; round++) {
        if (tun_to_udp() + udp_to_tun()) {
            if (round % 64 == 0) serve_control();
            continue;
        }
        if (poll(fds, 3, -1) < 0 && errno != EINTR) die("poll");
        if (fds[2].revents & POLLIN) serve_control();
    }
}
