package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Nodes selects the nodes EachNode visits.
type Nodes int

const (
	// Primaries are the nodes that take writes. What is written there (keys, and the function library
	// FUNCTION LOAD adds) reaches their replicas by replication.
	Primaries Nodes = iota
	// AllNodes are the primaries and their replicas. ACL users are not replicated, so they must be set
	// on every node, or a replica promoted by a failover would refuse every sidecar.
	AllNodes
)

// EachNode calls fn with a client of every node of the kind asked for, and returns every failure
// joined, each naming its node. A standalone URL has one node. A cluster's nodes are those of its
// current slot map; a Sentinel deployment's are the primary and the replicas the first sentinel to
// answer knows, except replicas it reports down or disconnected (they are set on a later call, once
// back). Nodes of a cluster are called concurrently.
func (c *Client) EachNode(ctx context.Context, which Nodes, fn func(ctx context.Context, addr string, node redis.UniversalClient) error) error {
	switch cl := c.UniversalClient.(type) {
	case *redis.ClusterClient:
		var (
			mu   sync.Mutex
			errs []error
		)
		each := func(ctx context.Context, n *redis.Client) error {
			if err := fn(ctx, n.Options().Addr, n); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", n.Options().Addr, err))
				mu.Unlock()
			}
			return nil
		}
		var err error
		if which == AllNodes {
			err = cl.ForEachShard(ctx, each)
		} else {
			err = cl.ForEachMaster(ctx, each)
		}
		if err != nil {
			return fmt.Errorf("failed to read the slot map of Redis Cluster %s: %w", c.url, err)
		}
		return errors.Join(errs...)
	}
	if c.url.Topology != Sentinel {
		return fn(ctx, c.url.Addrs[0], c.UniversalClient)
	}
	if which == Primaries {
		return fn(ctx, "the primary "+c.url.MasterName, c.UniversalClient)
	}
	addrs, err := c.sentinelNodes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range addrs {
		if err := fn(ctx, a, c.node(a)); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

// sentinelNodes asks the sentinels, one after the other until one answers, for the primary's address
// and those of its healthy replicas.
func (c *Client) sentinelNodes(ctx context.Context) ([]string, error) {
	var errs []error
	for _, s := range c.url.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s, DialTimeout: c.s.Timeout, ReadTimeout: c.s.Timeout,
			WriteTimeout: c.s.Timeout, DialerRetries: 1, MaxRetries: -1, DisableIdentity: true, TLSConfig: c.sentinelTLS(s)})
		nodes, err := askSentinel(ctx, sc, c.url.MasterName)
		_ = sc.Close()
		if err == nil {
			return nodes, nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", s, err))
	}
	return nil, fmt.Errorf("no sentinel of %s named the nodes of %s: %w", c.url, c.url.MasterName, errors.Join(errs...))
}

func askSentinel(ctx context.Context, sc *redis.SentinelClient, name string) ([]string, error) {
	primary, err := sc.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return nil, err
	}
	if len(primary) != 2 {
		return nil, fmt.Errorf("the sentinel answered %d values for the primary's address", len(primary))
	}
	out := []string{net.JoinHostPort(primary[0], primary[1])}
	replicas, err := sc.Replicas(ctx, name).Result()
	if err != nil {
		return nil, err
	}
	for _, r := range replicas {
		flags := strings.Split(r["flags"], ",")
		if slices.Contains(flags, "s_down") || slices.Contains(flags, "o_down") || slices.Contains(flags, "disconnected") {
			continue
		}
		out = append(out, net.JoinHostPort(r["ip"], r["port"]))
	}
	return out, nil
}

// sentinelTLS is the TLS configuration for the sentinel at addr of a rediss+sentinel URL, or nil.
func (c *Client) sentinelTLS(addr string) *tls.Config {
	if !c.url.tls {
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	return c.s.tlsFor(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
}

// node returns the client of one node of a Sentinel deployment, made on first use and kept until
// Close.
func (c *Client) node(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[addr]; n != nil {
		return n
	}
	u := mustURL(c.url.goRedis)
	u.Host = addr
	q := u.Query()
	// The options of the failover client that a plain one does not take.
	for _, p := range []string{"master_name", "addr", "route_by_latency", "route_by_latency_tolerance", "route_randomly", "replica_only", "use_disconnected_replicas"} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	if c.nodes == nil {
		c.nodes = map[string]*redis.Client{}
	}
	n := redis.NewClient(c.nodeOptions(u.String()))
	c.nodes[addr] = n
	return n
}

// Close closes the client and the clients of single nodes EachNode made.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := []error{c.UniversalClient.Close()}
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	c.nodes = nil
	return errors.Join(errs...)
}
