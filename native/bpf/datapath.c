// SPDX-License-Identifier: GPL-2.0
/* The ebpf mode's datapath: tc programs wired as Cilium wires its own.
 *
 *   cil_from_container  tc ingress of each pod's host-side veth (lxc...)
 *   cil_from_netdev     tc ingress of the node's underlay device (eth0)
 *   cil_from_overlay    tc ingress of cilium_vxlan (tunnel routing)
 *   cil_from_host       tc egress of cilium_host (the node's own traffic to pods and Services)
 *
 * Every program does the same three steps: reverse NAT of a Service's reply (from the CT map),
 * Service load balancing (services/backends maps, replacing kube-proxy), then the forwarding
 * decision: a local endpoint gets the packet straight into its namespace (bpf_redirect_peer),
 * a remote pod goes out of eth0 by the kernel's FIB (bpf_fib_lookup + bpf_redirect_neigh) or
 * into cilium_vxlan with a tunnel key (remote node, VNI = source identity), anything else goes
 * to the node's own stack. The maps are filled by the testbed as Cilium's agent fills its own;
 * the program is compiled once and every node loads its own copy with its own maps.
 *
 * Both IP families take the same steps, as Cilium's bpf_lxc handles IPv4 and IPv6: the
 * endpoint and ipcache maps hold addresses of either family (Cilium's keys: the address in a
 * 16-byte union and its family), Services of each family have their own maps
 * (cilium_lb4_*, cilium_lb6_*, cilium_ct4_global, cilium_ct6_global), IPv6 packets tunnel over
 * the IPv4 underlay, and a pod's neighbour solicitations are answered by the program (Cilium's
 * NDP responder) as its ARP requests are.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/socket.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ARP_REQUEST 1
#define ARP_REPLY 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_TTL_OFF (ETH_HLEN + offsetof(struct iphdr, ttl))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP6_HOPLIMIT_OFF (ETH_HLEN + offsetof(struct ipv6hdr, hop_limit))
#define IP6_SRC_OFF (ETH_HLEN + offsetof(struct ipv6hdr, saddr))
#define IP6_DST_OFF (ETH_HLEN + offsetof(struct ipv6hdr, daddr))
#define NDISC_NEIGHBOUR_SOLICITATION 135
#define NDISC_NEIGHBOUR_ADVERTISEMENT 136
#define ND_OPT_TARGET_LL_ADDR 2

/* an address of either family (Cilium's union v6addr); IPv4 in the first word */
union v6addr {
	__u32 p[4];
	__u8 addr[16];
};

/* the family byte of Cilium's endpoint and ipcache keys */
#define ENDPOINT_KEY_IPV4 1
#define ENDPOINT_KEY_IPV6 2

/* Cilium's reserved identities */
#define ID_HOST 1
#define ID_WORLD 2

/* the address a pod that reaches itself through a Service is seen from (Cilium's
 * IPV4_LOOPBACK): a packet with the pod's own address as source would be a martian */
#define LB_LOOPBACK bpf_htonl(0xa9fe2a01) /* 169.254.42.1 */

/* --- maps, named as Cilium names its own ------------------------------------------------- */
struct node_config {
	__u32 node_ip;        /* the underlay address, network order */
	__u32 router_ip;      /* cilium_host's address */
	__u32 netdev_ifindex; /* eth0 */
	__u32 host_ifindex;   /* cilium_host */
	__u32 tunnel_ifindex; /* cilium_vxlan; 0 with native routing */
	__u32 flags;
	union v6addr node_ip6;   /* the underlay's IPv6 address; zero without IPv6 */
	union v6addr router_ip6; /* cilium_host's IPv6 address */
};
#define CFG_TUNNEL 1

struct endpoint_info {
	__u32 ifindex;  /* the host side (lxc...) */
	__u32 identity; /* the pod's security identity */
	__u8 pod_mac[6];
	__u8 lxc_mac[6];
};

struct endpoint_key {
	union v6addr ip; /* IPv4: ip.p[0] */
	__u8 family;
	__u8 key;
	__u16 cluster_id;
};

struct ipcache_key {
	__u32 prefixlen; /* 32 (cluster ID, pad, family) + the address's prefix length */
	__u16 cluster_id;
	__u8 pad1;
	__u8 family;
	union v6addr ip;
};

struct ipcache_info {
	__u32 identity;
	__u32 tunnel_endpoint; /* the node the prefix lives on; 0: this node */
};

struct lb4_key {
	__u32 address;
	__u16 dport;        /* network order */
	__u16 backend_slot; /* 0: the service itself, 1..count: its backends */
	__u8 proto;
	__u8 pad[3];
};

struct lb6_key {
	union v6addr address;
	__u16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 pad[3];
};

struct lb_service { /* Cilium's lb4_service and lb6_service share it */
	__u32 backend_id; /* slot > 0 */
	__u16 count;      /* slot 0: how many backends */
	__u16 rev_nat_index;
	__u8 flags;
	__u8 pad[3];
};
#define SVC_EXTERNAL 1 /* NodePort, LoadBalancer or external IP: SNAT to a remote backend */
#define SVC_AFFINITY 2 /* sessionAffinity ClientIP: the backend follows the client address */
#define SVC_SOURCE_RANGE 4 /* loadBalancerSourceRanges: only sources in cilium_lb4_source_range */
#define SVC_REJECT 8 /* no backend at all: answer ICMP port unreachable (kube-proxy's REJECT,
		      * Cilium's service-no-backend-response=reject); without it, drop */

struct lb4_src_range_key {
	__u32 prefixlen; /* 32 (the index and pad) + the range's prefix length */
	__u16 rev_nat_index;
	__u16 pad;
	__u32 address;
};

struct lb6_src_range_key {
	__u32 prefixlen;
	__u16 rev_nat_index;
	__u16 pad;
	union v6addr address;
};

struct lb4_backend {
	__u32 address;
	__u16 port; /* network order */
	__u8 proto;
	__u8 pad;
};

struct lb6_backend {
	union v6addr address;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct lb4_reverse_nat {
	__u32 address;
	__u16 port;
	__u16 pad;
};

struct lb6_reverse_nat {
	union v6addr address;
	__u16 port;
	__u16 pad;
};

struct ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir; /* CT_SERVICE: a client's flow to a Service; CT_REPLY: its backend's answers */
	__u16 pad;
};
#define CT_SERVICE 0
#define CT_REPLY 1

struct ct6_key {
	union v6addr saddr;
	union v6addr daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

struct ct_entry { /* in both CT maps */
	__u32 backend_id; /* CT_SERVICE */
	__u16 rev_nat_index;
	__u8 flags;
	__u8 pad;
	union v6addr client; /* CT_REPLY with CT_SNAT: the client's own address */
};
#define CT_SNAT 1     /* the request's source was rewritten (external client, loopback) */
#define CT_EXTERNAL 2 /* the reply leaves by the FIB, not through the node's stack */

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* programs and reasons: the key of cilium_metrics is program * METRIC_REASONS + reason */
enum { PROG_CONTAINER, PROG_NETDEV, PROG_OVERLAY, PROG_HOST, PROGRAMS };
enum {
	R_TO_ENDPOINT,  /* redirected into a local pod (redirect_peer) */
	R_TO_OVERLAY,   /* tunnelled to another node (cilium_vxlan + tunnel key) */
	R_TO_NETDEV,    /* routed out of eth0 (fib_lookup + redirect / redirect_neigh) */
	R_TO_STACK,     /* handed to the node's own stack */
	R_LB,           /* a Service's address translated to a backend */
	R_REV_NAT,      /* a backend's reply translated back to the Service's address */
	R_ARP,          /* an ARP request (or IPv6 neighbour solicitation) of a pod answered */
	R_FROM_OVERLAY, /* decapsulated from cilium_vxlan */
	R_DROP_NO_BACKEND,
	R_DROP_FIB,
	R_DROP_INVALID,
	R_DROP_NAT,
	R_REJECT_NO_BACKEND, /* answered with ICMP port unreachable */
	R_DROP_SOURCE_RANGE, /* not in the Service's loadBalancerSourceRanges */
	METRIC_REASONS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_config);
} cilium_node_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
} cilium_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_info);
} cilium_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb4_key);
	__type(value, struct lb_service);
} cilium_lb4_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb6_key);
	__type(value, struct lb_service);
} cilium_lb6_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lb6_backend);
} cilium_lb6_backends_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u16);
	__type(value, struct lb6_reverse_nat);
} cilium_lb6_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb6_src_range_key);
	__type(value, __u8);
} cilium_lb6_source_range SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ct6_key);
	__type(value, struct ct_entry);
} cilium_ct6_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lb4_backend);
} cilium_lb4_backends_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
} cilium_lb4_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb4_src_range_key);
	__type(value, __u8);
} cilium_lb4_source_range SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} cilium_ct4_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROGRAMS * METRIC_REASONS);
	__type(key, __u32);
	__type(value, struct metrics_value);
} cilium_metrics SEC(".maps");

/* --- packets ------------------------------------------------------------------------------ */
struct tuple {
	union v6addr saddr, daddr; /* IPv4: the first word */
	__u16 sport, dport;        /* network order; 0 without ports */
	__u8 proto, ttl;           /* IPv6: the next header and the hop limit */
	__u8 family;               /* ENDPOINT_KEY_IPV4 or ENDPOINT_KEY_IPV6 */
	__u8 pad;
	__u16 l4;                  /* offset of the transport header */
};

#define IS_V6(t) ((t)->family == ENDPOINT_KEY_IPV6)

static __always_inline void count(struct __sk_buff *skb, int prog, int reason)
{
	__u32 key = prog * METRIC_REASONS + reason;
	struct metrics_value *m = bpf_map_lookup_elem(&cilium_metrics, &key);

	if (m) {
		m->packets += 1;
		m->bytes += skb->len;
	}
}

static __always_inline struct node_config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cilium_node_config, &zero);
}

static __always_inline int addr_eq(const union v6addr *a, const union v6addr *b)
{
	return a->p[0] == b->p[0] && a->p[1] == b->p[1] && a->p[2] == b->p[2] && a->p[3] == b->p[3];
}

/* the endpoint (a pod of this node) holding an address of a family */
static __always_inline struct endpoint_info *endpoint(__u8 family, const union v6addr *ip)
{
	struct endpoint_key key = {.family = family};

	if (family == ENDPOINT_KEY_IPV6)
		key.ip = *ip;
	else
		key.ip.p[0] = ip->p[0];
	return bpf_map_lookup_elem(&cilium_lxc, &key);
}

/* the longest ipcache prefix holding an address */
static __always_inline struct ipcache_info *ipcache(__u8 family, const union v6addr *ip)
{
	struct ipcache_key key = {.family = family};

	if (family == ENDPOINT_KEY_IPV6) {
		key.prefixlen = 32 + 128;
		key.ip = *ip;
	} else {
		key.prefixlen = 32 + 32;
		key.ip.p[0] = ip->p[0];
	}
	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

static __always_inline int load_ports(struct __sk_buff *skb, struct tuple *t)
{
	t->sport = t->dport = 0;
	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, t->l4, ports, sizeof(ports)) < 0)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
	}
	return 0;
}

/* 0: an IPv4 or IPv6 packet, its tuple filled; -1 anything else. IPv6 extension headers are
 * not walked: a packet with one is forwarded by its addresses, without ports. */
static __always_inline int parse(struct __sk_buff *skb, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0 || ip6.version != 6)
			return -1;
		__builtin_memcpy(&t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(&t->daddr, &ip6.daddr, 16);
		t->proto = ip6.nexthdr;
		t->ttl = ip6.hop_limit;
		t->family = ENDPOINT_KEY_IPV6;
		t->l4 = ETH_HLEN + sizeof(ip6);
		return load_ports(skb, t);
	}
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.version != 4 ||
		    ip.ihl < 5)
			return -1;
		t->saddr.p[0] = ip.saddr;
		t->daddr.p[0] = ip.daddr;
		t->proto = ip.protocol;
		t->ttl = ip.ttl;
		t->family = ENDPOINT_KEY_IPV4;
		t->l4 = ETH_HLEN + ip.ihl * 4;
		if (ip.frag_off & bpf_htons(IP_OFFSET))
			return 0; /* a later fragment: no ports */
		return load_ports(skb, t);
	}
	return -1;
}

static __always_inline int l4_csum_off(struct tuple *t)
{
	if (t->proto == IPPROTO_TCP)
		return t->l4 + 16;
	if (t->proto == IPPROTO_UDP)
		return t->l4 + 6;
	return -1;
}

static __always_inline int l4_csum_flags(struct tuple *t)
{
	return t->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* rewrite the source (dst = 0) or destination (dst = 1) address, fixing the checksums (IPv6
 * has none in its header: only the transport's, over its pseudo-header) */
static __always_inline int set_addr(struct __sk_buff *skb, struct tuple *t, int dst,
				    const union v6addr *addr)
{
	union v6addr old = dst ? t->daddr : t->saddr, new = *addr;
	int csum = l4_csum_off(t);

	if (IS_V6(t)) {
		__s64 diff;

		if (addr_eq(&old, &new))
			return 0;
		diff = bpf_csum_diff(old.p, sizeof(old), new.p, sizeof(new), 0);
		if (diff < 0)
			return -1;
		if (csum >= 0 && bpf_l4_csum_replace(skb, csum, 0, diff,
						     BPF_F_PSEUDO_HDR | l4_csum_flags(t)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, dst ? IP6_DST_OFF : IP6_SRC_OFF, &new, 16, 0) < 0)
			return -1;
	} else {
		if (old.p[0] == new.p[0])
			return 0;
		if (csum >= 0 && bpf_l4_csum_replace(skb, csum, old.p[0], new.p[0],
						     BPF_F_PSEUDO_HDR | l4_csum_flags(t) | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old.p[0], new.p[0], 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, dst ? IP_DST_OFF : IP_SRC_OFF, &new.p[0], 4, 0) < 0)
			return -1;
		new.p[1] = new.p[2] = new.p[3] = 0;
	}
	if (dst)
		t->daddr = new;
	else
		t->saddr = new;
	return 0;
}

static __always_inline int set_port(struct __sk_buff *skb, struct tuple *t, int dst, __u16 port)
{
	__u16 old = dst ? t->dport : t->sport;
	int csum = l4_csum_off(t);

	if (old == port || csum < 0)
		return 0;
	if (bpf_l4_csum_replace(skb, csum, old, port, l4_csum_flags(t) | 2) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, t->l4 + (dst ? 2 : 0), &port, 2, 0) < 0)
		return -1;
	if (dst)
		t->dport = port;
	else
		t->sport = port;
	return 0;
}

/* a routed hop: TTL (IPv6: hop limit) minus one, as Cilium's ipv4_l3 and ipv6_l3 do
 * (traceroute sees the node) */
static __always_inline int dec_ttl(struct __sk_buff *skb, struct tuple *t)
{
	__u8 ttl = t->ttl - 1;

	if (IS_V6(t)) {
		if (bpf_skb_store_bytes(skb, IP6_HOPLIMIT_OFF, &ttl, 1, 0) < 0)
			return -1;
	} else {
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, bpf_htons(t->ttl << 8),
					bpf_htons(ttl << 8), 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, IP_TTL_OFF, &ttl, 1, 0) < 0)
			return -1;
	}
	t->ttl = ttl;
	return 0;
}

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

static __always_inline __u32 mix_addr(__u32 h, const union v6addr *a)
{
	return mix(mix(mix(mix(h, a->p[0]), a->p[1]), a->p[2]), a->p[3]);
}

/* --- the Service maps of each family ------------------------------------------------------ */
struct backend {
	union v6addr address;
	__u16 port;
};

static __always_inline struct lb_service *lb_lookup(struct tuple *t, __u16 slot)
{
	if (IS_V6(t)) {
		struct lb6_key key = {.address = t->daddr, .dport = t->dport, .proto = t->proto,
				      .backend_slot = slot};

		return bpf_map_lookup_elem(&cilium_lb6_services_v2, &key);
	}
	struct lb4_key key = {.address = t->daddr.p[0], .dport = t->dport, .proto = t->proto,
			      .backend_slot = slot};

	return bpf_map_lookup_elem(&cilium_lb4_services_v2, &key);
}

/* The address and port at the start of a Service map's value (Cilium's lb4/lb6 backend and
 * reverse-NAT values both begin so), from the map of the tuple's family: 0, copied to `out`;
 * -1, no such entry. */
static __always_inline int address_port(struct tuple *t, void *map4, void *map6, const void *key,
					struct backend *out)
{
	if (IS_V6(t)) {
		struct lb6_reverse_nat *v6 = bpf_map_lookup_elem(map6, key);

		if (!v6)
			return -1;
		out->address = v6->address;
		out->port = v6->port;
		return 0;
	}
	struct lb4_reverse_nat *v4 = bpf_map_lookup_elem(map4, key);

	if (!v4)
		return -1;
	__builtin_memset(&out->address, 0, sizeof(out->address));
	out->address.p[0] = v4->address;
	out->port = v4->port;
	return 0;
}

static __always_inline int backend_lookup(struct tuple *t, __u32 id, struct backend *out)
{
	return address_port(t, &cilium_lb4_backends_v3, &cilium_lb6_backends_v3, &id, out);
}

static __always_inline int rev_nat_lookup(struct tuple *t, __u16 index, struct backend *out)
{
	return address_port(t, &cilium_lb4_reverse_nat, &cilium_lb6_reverse_nat, &index, out);
}

static __always_inline int source_allowed(struct tuple *t, __u16 index)
{
	if (IS_V6(t)) {
		struct lb6_src_range_key key = {.prefixlen = 32 + 128, .rev_nat_index = index,
						.address = t->saddr};

		return bpf_map_lookup_elem(&cilium_lb6_source_range, &key) != 0;
	}
	struct lb4_src_range_key key = {.prefixlen = 64, .rev_nat_index = index,
					.address = t->saddr.p[0]};

	return bpf_map_lookup_elem(&cilium_lb4_source_range, &key) != 0;
}

/* the CT map of the tuple's family: look up (entry NULL), update or delete one entry */
#define CT_LOOKUP 0
#define CT_UPDATE 1
#define CT_DELETE 2
static __always_inline struct ct_entry *ct(struct tuple *t, const union v6addr *saddr,
					   const union v6addr *daddr, __u16 sport, __u16 dport,
					   __u8 dir, int op, struct ct_entry *entry)
{
	if (IS_V6(t)) {
		struct ct6_key key = {.saddr = *saddr, .daddr = *daddr, .sport = sport,
				      .dport = dport, .proto = t->proto, .dir = dir};

		if (op == CT_UPDATE)
			bpf_map_update_elem(&cilium_ct6_global, &key, entry, BPF_ANY);
		else if (op == CT_DELETE)
			bpf_map_delete_elem(&cilium_ct6_global, &key);
		else
			return bpf_map_lookup_elem(&cilium_ct6_global, &key);
		return 0;
	}
	struct ct_key key = {.saddr = saddr->p[0], .daddr = daddr->p[0], .sport = sport,
			     .dport = dport, .proto = t->proto, .dir = dir};

	if (op == CT_UPDATE)
		bpf_map_update_elem(&cilium_ct4_global, &key, entry, BPF_ANY);
	else if (op == CT_DELETE)
		bpf_map_delete_elem(&cilium_ct4_global, &key);
	else
		return bpf_map_lookup_elem(&cilium_ct4_global, &key);
	return 0;
}

/* --- Services (kube-proxy replacement) --------------------------------------------------- */
/* A backend's answer on its way back to the client: restore the Service's address (and the
 * client's, where the request was SNATed). Returns the CT entry's flags, or -1 for none. */
static __always_inline int rev_nat(struct __sk_buff *skb, struct tuple *t, int prog)
{
	struct ct_entry *entry;
	struct backend rn;
	union v6addr client;
	__u16 index;
	__u8 flags;

	if (!t->sport)
		return -1;
	entry = ct(t, &t->saddr, &t->daddr, t->sport, t->dport, CT_REPLY, CT_LOOKUP, 0);
	if (!entry)
		return -1;
	index = entry->rev_nat_index;
	client = entry->client;
	flags = entry->flags;
	if (rev_nat_lookup(t, index, &rn) < 0)
		return -1;
	if (set_addr(skb, t, 0, &rn.address) < 0 || set_port(skb, t, 0, rn.port) < 0)
		return -1;
	if ((flags & CT_SNAT) && set_addr(skb, t, 1, &client) < 0)
		return -1;
	count(skb, prog, R_REV_NAT);
	return flags;
}

/* A packet to a Service's address and port: DNAT to one of its backends, chosen once per flow
 * (the CT map remembers it). 0: not a Service; 1: translated; -1: drop (no backend); -2:
 * refuse (no backend at all). */
static __always_inline int lb(struct __sk_buff *skb, struct tuple *t, struct node_config *cfg,
			      int prog)
{
	struct ct_entry entry = {}, *known;
	struct lb_service *svc;
	struct backend be;
	union v6addr client = t->saddr, source = t->saddr, daddr = t->daddr;
	__u32 backend_id = 0;
	__u16 count_, rev_nat_index, sport = t->sport, dport = t->dport;
	__u8 flags;
	int found = -1;

	if (!t->dport)
		return 0;
	svc = lb_lookup(t, 0);
	if (!svc)
		return 0;
	count_ = svc->count;
	rev_nat_index = svc->rev_nat_index;
	flags = svc->flags;
	if ((flags & SVC_SOURCE_RANGE) && !source_allowed(t, rev_nat_index)) {
		count(skb, prog, R_DROP_SOURCE_RANGE);
		return -1;
	}
	if (!count_) {
		if (flags & SVC_REJECT)
			return -2;
		count(skb, prog, R_DROP_NO_BACKEND);
		return -1;
	}
	known = ct(t, &client, &daddr, sport, dport, CT_SERVICE, CT_LOOKUP, 0);
	if (known) {
		backend_id = known->backend_id;
		found = backend_lookup(t, backend_id, &be);
	}
	if (found < 0) { /* a new flow, or its backend went away: pick one */
		__u32 hash = mix_addr(0, &t->saddr);

		if (!(flags & SVC_AFFINITY))
			hash = mix(mix(mix_addr(hash, &t->daddr),
				       ((__u32)t->sport << 16) | t->dport), t->proto);
		svc = lb_lookup(t, hash % count_ + 1);
		if (!svc) {
			count(skb, prog, R_DROP_NO_BACKEND);
			return -1;
		}
		backend_id = svc->backend_id;
		if (backend_lookup(t, backend_id, &be) < 0) {
			count(skb, prog, R_DROP_NO_BACKEND);
			return -1;
		}
		entry.backend_id = backend_id;
		entry.rev_nat_index = rev_nat_index;
		ct(t, &client, &daddr, sport, dport, CT_SERVICE, CT_UPDATE, &entry);
	}
	if (addr_eq(&be.address, &t->saddr)) {
		/* the pod reaches itself: from Cilium's loopback address (IPv6: cilium_host's) */
		if (IS_V6(t)) {
			source = cfg->router_ip6;
		} else {
			__builtin_memset(&source, 0, sizeof(source));
			source.p[0] = LB_LOOPBACK;
		}
	} else if ((flags & SVC_EXTERNAL) && !endpoint(t->family, &be.address)) {
		/* an external client to a backend elsewhere: the reply must come back here */
		if (IS_V6(t)) {
			source = cfg->node_ip6;
		} else {
			__builtin_memset(&source, 0, sizeof(source));
			source.p[0] = cfg->node_ip;
		}
	}
	entry.backend_id = 0;
	entry.client = client;
	entry.rev_nat_index = rev_nat_index;
	entry.flags = (addr_eq(&source, &client) ? 0 : CT_SNAT) |
		      ((flags & SVC_EXTERNAL) ? CT_EXTERNAL : 0);
	ct(t, &be.address, &source, be.port, sport, CT_REPLY, CT_UPDATE, &entry);
	if (set_addr(skb, t, 1, &be.address) < 0 || set_port(skb, t, 1, be.port) < 0 ||
	    set_addr(skb, t, 0, &source) < 0) {
		count(skb, prog, R_DROP_NAT);
		return -1;
	}
	count(skb, prog, R_LB);
	return 1;
}

/* --- forwarding --------------------------------------------------------------------------- */
static __always_inline int set_macs(struct __sk_buff *skb, __u8 *dst, __u8 *src)
{
	if (bpf_skb_store_bytes(skb, 0, dst, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, src, ETH_ALEN, 0) < 0)
		return -1;
	return 0;
}

/* Into a pod of this node: from an ingress hook straight into its namespace (redirect_peer,
 * the host stack never sees it); from cilium_host's egress through its veth. */
static __always_inline int to_endpoint(struct __sk_buff *skb, struct tuple *t,
				       struct endpoint_info *ep, int prog, int routed)
{
	__u8 pod_mac[ETH_ALEN], lxc_mac[ETH_ALEN];
	__u32 ifindex = ep->ifindex;

	__builtin_memcpy(pod_mac, ep->pod_mac, ETH_ALEN);
	__builtin_memcpy(lxc_mac, ep->lxc_mac, ETH_ALEN);
	if (routed && dec_ttl(skb, t) < 0)
		goto drop;
	if (set_macs(skb, pod_mac, lxc_mac) < 0)
		goto drop;
	count(skb, prog, R_TO_ENDPOINT);
	if (prog == PROG_HOST)
		return bpf_redirect(ifindex, 0);
	bpf_skb_change_type(skb, PACKET_HOST);
	return bpf_redirect_peer(ifindex, 0);
drop:
	count(skb, prog, R_DROP_INVALID);
	return TC_ACT_SHOT;
}

/* Out of the node by the kernel's FIB (of the packet's family): the neighbour's MAC when
 * known, else redirect_neigh resolves it. TC_ACT_OK (the stack) where the FIB does not
 * forward. */
static __always_inline int fib_redirect(struct __sk_buff *skb, struct tuple *t, int prog)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	int rc;

	fib.l4_protocol = t->proto;
	/* tot_len 0: the kernel checks the MTU as forwarding does, GSO packets included */
	if (IS_V6(t)) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, t->saddr.p, 16);
		__builtin_memcpy(fib.ipv6_dst, t->daddr.p, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = t->saddr.p[0];
		fib.ipv4_dst = t->daddr.p[0];
	}
	fib.ifindex = prog == PROG_HOST ? skb->ifindex : skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (set_macs(skb, fib.dmac, fib.smac) < 0)
			goto drop;
		count(skb, prog, R_TO_NETDEV);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (IS_V6(t)) {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
		} else {
			nh.nh_family = AF_INET;
			nh.ipv4_nh = fib.ipv4_dst;
		}
		count(skb, prog, R_TO_NETDEV);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED) {
		count(skb, prog, R_TO_STACK);
		return TC_ACT_OK;
	}
drop:
	count(skb, prog, R_DROP_FIB);
	return TC_ACT_SHOT;
}

/* this node's own address (the underlay's or cilium_host's) of the tuple's family? */
static __always_inline int from_this_node(struct tuple *t, struct node_config *cfg)
{
	if (IS_V6(t))
		return addr_eq(&t->saddr, &cfg->router_ip6) || addr_eq(&t->saddr, &cfg->node_ip6);
	return t->saddr.p[0] == cfg->router_ip || t->saddr.p[0] == cfg->node_ip;
}

/* Into the tunnel to another node: over the IPv4 underlay for both families, as Cilium's
 * tunnel does */
static __always_inline int to_overlay(struct __sk_buff *skb, struct tuple *t,
				      struct node_config *cfg, __u32 endpoint_ip, int prog)
{
	struct bpf_tunnel_key key = {};
	struct endpoint_info *src = endpoint(t->family, &t->saddr);

	key.remote_ipv4 = bpf_ntohl(endpoint_ip);
	/* the VNI carries the source's security identity, as Cilium's does */
	key.tunnel_id = src ? src->identity : from_this_node(t, cfg) ? ID_HOST : ID_WORLD;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0) {
		count(skb, prog, R_DROP_INVALID);
		return TC_ACT_SHOT;
	}
	count(skb, prog, R_TO_OVERLAY);
	return bpf_redirect(cfg->tunnel_ifindex, 0);
}

/* The forwarding decision every program ends with. `routed`: the packet crossed a router
 * hop here (a pod's or the underlay's packet, not the node's own). */
static __always_inline int forward(struct __sk_buff *skb, struct tuple *t, struct node_config *cfg,
				   int prog, int routed, int external)
{
	struct endpoint_info *ep = endpoint(t->family, &t->daddr);
	struct ipcache_info *info;

	if (routed && t->ttl <= 1) { /* the stack sends ICMP time exceeded */
		count(skb, prog, R_TO_STACK);
		return TC_ACT_OK;
	}
	if (ep)
		return to_endpoint(skb, t, ep, prog, routed);
	info = ipcache(t->family, &t->daddr);
	if (info && info->tunnel_endpoint && info->tunnel_endpoint != cfg->node_ip) {
		__u32 tunnel_endpoint = info->tunnel_endpoint;

		if (routed && dec_ttl(skb, t) < 0) {
			count(skb, prog, R_DROP_INVALID);
			return TC_ACT_SHOT;
		}
		if (cfg->flags & CFG_TUNNEL)
			return to_overlay(skb, t, cfg, tunnel_endpoint, prog);
		return fib_redirect(skb, t, prog);
	}
	if (external) /* a translated reply to an outside client, from a node address */
		return fib_redirect(skb, t, prog);
	count(skb, prog, R_TO_STACK);
	return TC_ACT_OK;
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return ~csum;
}

/* A Service without any backend: the packet becomes an ICMP port unreachable from the
 * Service's address, sent back where it came from (what kube-proxy's REJECT answers). */
static __always_inline int reject(struct __sk_buff *skb, struct tuple *t, int prog)
{
	struct {
		struct iphdr ip;
		struct {
			__u8 type, code;
			__u16 checksum;
			__u32 unused;
		} icmp;
		__u8 quoted[28]; /* the packet's IP header and first 8 bytes, as ICMP quotes them */
	} __attribute__((packed, aligned(4))) out = {};
	__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];

	if (t->l4 != ETH_HLEN + sizeof(struct iphdr) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, out.quoted, sizeof(out.quoted)) < 0 ||
	    bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0 ||
	    bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out), 0) < 0)
		goto drop;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	out.ip.version = 4;
	out.ip.ihl = 5;
	out.ip.ttl = 64;
	out.ip.protocol = IPPROTO_ICMP;
	out.ip.tot_len = bpf_htons(sizeof(out));
	out.ip.saddr = t->daddr.p[0];
	out.ip.daddr = t->saddr.p[0];
	out.ip.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out.ip, sizeof(out.ip), 0));
	out.icmp.type = ICMP_DEST_UNREACH;
	out.icmp.code = ICMP_PORT_UNREACH;
	out.icmp.checksum = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out.icmp,
						    sizeof(out.icmp) + sizeof(out.quoted), 0));
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), 0) < 0)
		goto drop;
	count(skb, prog, R_REJECT_NO_BACKEND);
	/* back the way it came: out of the device it entered (into the pod, onto the wire), or
	 * from cilium_host's egress into the node's own stack */
	return bpf_redirect(skb->ifindex, prog == PROG_HOST ? BPF_F_INGRESS : 0);
drop:
	count(skb, prog, R_DROP_NO_BACKEND);
	return TC_ACT_SHOT;
}

/* The same for IPv6: an ICMPv6 destination unreachable (port unreachable) from the Service's
 * address, quoting the packet's IPv6 header and first 8 bytes. */
static __always_inline int reject6(struct __sk_buff *skb, struct tuple *t, int prog)
{
	struct {
		struct ipv6hdr ip;
		struct {
			__u8 type, code;
			__u16 checksum;
			__u32 unused;
			__u8 quoted[48];
		} icmp;
	} __attribute__((packed, aligned(4))) out = {};
	struct {
		union v6addr saddr, daddr;
		__be32 len, next;
	} __attribute__((aligned(4))) pseudo = {};
	__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];
	__s64 sum;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, out.icmp.quoted, sizeof(out.icmp.quoted)) < 0 ||
	    bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0 ||
	    bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out), 0) < 0)
		goto drop;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	out.ip.version = 6;
	out.ip.payload_len = bpf_htons(sizeof(out.icmp));
	out.ip.nexthdr = IPPROTO_ICMPV6;
	out.ip.hop_limit = 64;
	__builtin_memcpy(&out.ip.saddr, &t->daddr, 16);
	__builtin_memcpy(&out.ip.daddr, &t->saddr, 16);
	out.icmp.type = ICMPV6_DEST_UNREACH;
	out.icmp.code = ICMPV6_PORT_UNREACH;
	pseudo.saddr = t->daddr;
	pseudo.daddr = t->saddr;
	pseudo.len = bpf_htonl(sizeof(out.icmp));
	pseudo.next = bpf_htonl(IPPROTO_ICMPV6);
	sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	if (sum < 0)
		goto drop;
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.icmp, sizeof(out.icmp), sum);
	if (sum < 0)
		goto drop;
	out.icmp.checksum = csum_fold(sum);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), 0) < 0)
		goto drop;
	count(skb, prog, R_REJECT_NO_BACKEND);
	return bpf_redirect(skb->ifindex, prog == PROG_HOST ? BPF_F_INGRESS : 0);
drop:
	count(skb, prog, R_DROP_NO_BACKEND);
	return TC_ACT_SHOT;
}

static __always_inline int handle(struct __sk_buff *skb, int prog, int routed)
{
	struct node_config *cfg = config();
	struct tuple t;
	int flags, rc;

	if (!cfg)
		return TC_ACT_OK;
	if (parse(skb, &t) < 0)
		return TC_ACT_OK;
	flags = rev_nat(skb, &t, prog);
	if (flags < 0) {
		rc = lb(skb, &t, cfg, prog);
		if (rc == -2)
			return IS_V6(&t) ? reject6(skb, &t, prog) : reject(skb, &t, prog);
		if (rc < 0)
			return TC_ACT_SHOT;
		if (rc == 0 && t.dport) {
			/* a flow straight to an address: a reply entry of an earlier Service flow
			 * that used the same ports must not translate its answers */
			ct(&t, &t.daddr, &t.saddr, t.dport, t.sport, CT_REPLY, CT_DELETE, 0);
		}
	}
	return forward(skb, &t, cfg, prog, routed, flags > 0 && (flags & CT_EXTERNAL));
}

/* A pod's ARP request for its gateway (or anything but itself): answered with the lxc MAC,
 * as Cilium's ARP responder does, so the pod's frames come to this program. */
static __always_inline int arp_respond(struct __sk_buff *skb)
{
	struct {
		__be16 hw, proto;
		__u8 hlen, plen;
		__be16 op;
		__u8 sha[ETH_ALEN];
		__be32 sip;
		__u8 tha[ETH_ALEN];
		__be32 tip;
	} __attribute__((packed)) arp;
	__u8 lxc_mac[ETH_ALEN];
	__be32 tip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &arp, sizeof(arp)) < 0 ||
	    arp.op != bpf_htons(ARP_REQUEST) || arp.plen != 4 || arp.sip == arp.tip)
		return TC_ACT_OK;
	/* the lxc device's MAC, as the endpoint map holds it for the asking pod */
	{
		union v6addr sip = {.p = {arp.sip}};
		struct endpoint_info *ep = endpoint(ENDPOINT_KEY_IPV4, &sip);

		if (!ep)
			return TC_ACT_OK;
		__builtin_memcpy(lxc_mac, ep->lxc_mac, ETH_ALEN);
	}
	tip = arp.tip;
	arp.op = bpf_htons(ARP_REPLY);
	__builtin_memcpy(arp.tha, arp.sha, ETH_ALEN);
	arp.tip = arp.sip;
	__builtin_memcpy(arp.sha, lxc_mac, ETH_ALEN);
	arp.sip = tip;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &arp, sizeof(arp), 0) < 0 ||
	    set_macs(skb, arp.tha, lxc_mac) < 0)
		return TC_ACT_SHOT;
	count(skb, PROG_CONTAINER, R_ARP);
	return bpf_redirect(skb->ifindex, 0); /* back out of the lxc device, into the pod */
}

/* A pod's neighbour solicitation for anything but itself (its gateway, cilium_host's
 * address): answered with a neighbour advertisement naming the lxc MAC, as Cilium's NDP
 * responder does, so the pod's IPv6 frames come to this program too. TC_ACT_OK for every
 * other packet (the program goes on with it). */
static __always_inline int nd_respond(struct __sk_buff *skb)
{
	struct ipv6hdr ip6;
	struct {
		__u8 type, code;
		__u16 checksum;
		__u32 flags;
		union v6addr target;
	} __attribute__((packed, aligned(4))) ns;
	struct {
		struct ipv6hdr ip;
		struct {
			__u8 type, code;
			__u16 checksum;
			__u32 flags;
			union v6addr target;
			__u8 opt_type, opt_len;
			__u8 mac[ETH_ALEN];
		} na;
	} __attribute__((packed, aligned(4))) out = {};
	struct {
		union v6addr saddr, daddr;
		__be32 len, next;
	} __attribute__((aligned(4))) pseudo = {};
	struct endpoint_info *ep;
	__u8 pod_mac[ETH_ALEN], lxc_mac[ETH_ALEN];
	union v6addr saddr;
	__s64 sum;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0 ||
	    ip6.nexthdr != IPPROTO_ICMPV6 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip6), &ns, sizeof(ns)) < 0 ||
	    ns.type != NDISC_NEIGHBOUR_SOLICITATION)
		return TC_ACT_OK;
	__builtin_memcpy(&saddr, &ip6.saddr, 16);
	if (addr_eq(&saddr, &ns.target))
		return TC_ACT_OK;
	ep = endpoint(ENDPOINT_KEY_IPV6, &saddr); /* none for a duplicate check (from ::) */
	if (!ep)
		return TC_ACT_OK;
	__builtin_memcpy(pod_mac, ep->pod_mac, ETH_ALEN);
	__builtin_memcpy(lxc_mac, ep->lxc_mac, ETH_ALEN);
	out.ip.version = 6;
	out.ip.payload_len = bpf_htons(sizeof(out.na));
	out.ip.nexthdr = IPPROTO_ICMPV6;
	out.ip.hop_limit = 255;
	__builtin_memcpy(&out.ip.saddr, &ns.target, 16);
	__builtin_memcpy(&out.ip.daddr, &saddr, 16);
	out.na.type = NDISC_NEIGHBOUR_ADVERTISEMENT;
	out.na.flags = bpf_htonl(0xe0000000); /* router, solicited, override */
	out.na.target = ns.target;
	out.na.opt_type = ND_OPT_TARGET_LL_ADDR;
	out.na.opt_len = 1;
	__builtin_memcpy(out.na.mac, lxc_mac, ETH_ALEN);
	pseudo.saddr = ns.target;
	pseudo.daddr = saddr;
	pseudo.len = bpf_htonl(sizeof(out.na));
	pseudo.next = bpf_htonl(IPPROTO_ICMPV6);
	sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	if (sum < 0)
		return TC_ACT_SHOT;
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.na, sizeof(out.na), sum);
	if (sum < 0)
		return TC_ACT_SHOT;
	out.na.checksum = csum_fold(sum);
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), 0) < 0 ||
	    set_macs(skb, pod_mac, lxc_mac) < 0)
		return TC_ACT_SHOT;
	count(skb, PROG_CONTAINER, R_ARP);
	return bpf_redirect(skb->ifindex, 0); /* back out of the lxc device, into the pod */
}

SEC("tc")
int cil_from_container(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return arp_respond(skb);
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		int rc = nd_respond(skb);

		if (rc != TC_ACT_OK)
			return rc;
	}
	return handle(skb, PROG_CONTAINER, 1);
}

SEC("tc")
int cil_from_netdev(struct __sk_buff *skb)
{
	return handle(skb, PROG_NETDEV, 1);
}

SEC("tc")
int cil_from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		count(skb, PROG_OVERLAY, R_FROM_OVERLAY);
	/* the inner frame was addressed to no MAC of this node */
	bpf_skb_change_type(skb, PACKET_HOST);
	return handle(skb, PROG_OVERLAY, 1);
}

SEC("tc")
int cil_from_host(struct __sk_buff *skb)
{
	return handle(skb, PROG_HOST, 0);
}

char _license[] SEC("license") = "GPL";
