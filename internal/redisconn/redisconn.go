// Package redisconn turns claude-guard's Redis URLs into go-redis clients, for the three topologies
// the limit backend runs on (docs/limits.md, "Redis topologies"):
//
//	redis://[user:password@]host:port[/db][?options]                                   one server
//	redis+cluster://[user:password@]host:port[?addr=host:port&addr=...&options]        Redis Cluster
//	redis+sentinel://[user:password@]host:port[/db]?master_name=NAME[&addr=...&options] Sentinel
//
// (rediss, rediss+cluster and rediss+sentinel for TLS). For a cluster the hosts are seed nodes, for
// Sentinel they are the sentinels; the user and password are always those of the data nodes, never in
// the query, so that Public (the URL without its user info, which the operator renders into sidecar
// configs) never holds a secret. The options are go-redis's own URL options (dial_timeout,
// read_timeout, pool_size, ...).
//
// One URL, not a topology flag beside it: the URL already travels from the chart to the manager and,
// without credentials, into every policy's config, so the topology travels with it and cannot disagree
// with it.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Topology is how the Redis behind a URL is laid out.
type Topology string

const (
	// Standalone is one server (or one endpoint in front of a primary).
	Standalone Topology = "standalone"
	// Cluster is a Redis Cluster: keys are spread over the primaries by hash slot. Every key of one
	// request carries the namespace's hash tag ({<namespace>}), so one FCALL touches one slot.
	Cluster Topology = "cluster"
	// Sentinel is a primary with replicas watched by sentinels, which promote a replica when the primary
	// fails; clients ask the sentinels where the primary is.
	Sentinel Topology = "sentinel"
)

// schemes maps each accepted scheme to its topology and whether it uses TLS.
var schemes = map[string]struct {
	topology Topology
	tls      bool
}{
	"redis": {Standalone, false}, "rediss": {Standalone, true},
	"redis+cluster": {Cluster, false}, "rediss+cluster": {Cluster, true},
	"redis+sentinel": {Sentinel, false}, "rediss+sentinel": {Sentinel, true},
}

// Schemes lists the accepted schemes, for error messages.
const Schemes = "redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://"

// secretParams are query parameters go-redis would accept for credentials. They are refused: the query
// is kept in Public, so a password there would reach every sidecar config.
var secretParams = []string{"username", "password", "sentinel_username", "sentinel_password"}

// URL is a parsed Redis URL. Its String never shows credentials.
type URL struct {
	Topology Topology
	// Addrs are the hosts of the URL: the server, the cluster's seed nodes or the sentinels.
	Addrs []string
	// DB is the database of the URL's path (always 0 for a cluster, which has only one).
	DB int
	// MasterName is the Sentinel name of the primary (Sentinel only).
	MasterName string

	scheme string
	tls    bool
	user   *url.Userinfo
	// goRedis is the URL as go-redis's own parser for the topology reads it: plain redis:// or
	// rediss://, without user info.
	goRedis string
	public  string
}

// Parse parses a Redis URL. Its errors never repeat the URL, which may hold a password.
func Parse(raw string) (*URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL.
		return nil, errors.New("failed to parse the Redis URL (not shown: it may hold a password)")
	}
	kind, ok := schemes[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("the Redis URL must start with %s, got scheme %q", Schemes, u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("the Redis URL names no host")
	}
	q := u.Query()
	for _, p := range secretParams {
		if q.Has(p) {
			return nil, fmt.Errorf("the Redis URL must not hold credentials in its query (%s): put the data nodes' user and password in the URL's user info", p)
		}
	}
	r := &URL{Topology: kind.topology, scheme: u.Scheme, tls: kind.tls, user: u.User}
	if r.Addrs, err = addrs(u); err != nil {
		return nil, err
	}
	plain := *u
	plain.User = nil
	plain.Scheme = "redis"
	if kind.tls {
		plain.Scheme = "rediss"
	}
	r.goRedis = plain.String()
	pub := *u
	pub.User = nil
	r.public = pub.String()
	if err := r.parseTopology(); err != nil {
		return nil, err
	}
	return r, nil
}

// addrs returns the URL's host and its addr query parameters, each host:port (6379 by default).
func addrs(u *url.URL) ([]string, error) {
	out := []string{hostPort(u.Host)}
	for _, a := range u.Query()["addr"] {
		h, p, err := net.SplitHostPort(a)
		if err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("the Redis URL's addr parameter must be host:port, got %q", a)
		}
		out = append(out, a)
	}
	return out, nil
}

func hostPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	return net.JoinHostPort(strings.Trim(h, "[]"), "6379")
}

// parseTopology checks the URL with go-redis's parser for its topology, so that a mistake is reported
// at start, not at the first request.
func (r *URL) parseTopology() error {
	var err error
	switch r.Topology {
	case Standalone:
		if len(r.Addrs) > 1 {
			return fmt.Errorf("the Redis URL has addr parameters, which only %s+cluster:// and %s+sentinel:// URLs take", r.base(), r.base())
		}
		var o *redis.Options
		if o, err = redis.ParseURL(r.goRedis); err == nil {
			r.DB = o.DB
		}
	case Cluster:
		if p := strings.Trim(mustURL(r.goRedis).Path, "/"); p != "" && p != "0" {
			return fmt.Errorf("a Redis Cluster has database 0 only; the URL selects %q", p)
		}
		noPath := mustURL(r.goRedis)
		noPath.Path = ""
		r.goRedis = noPath.String()
		_, err = redis.ParseClusterURL(r.goRedis)
	case Sentinel:
		var o *redis.FailoverOptions
		if o, err = redis.ParseFailoverURL(r.goRedis); err == nil {
			r.DB, r.MasterName = o.DB, o.MasterName
			if r.MasterName == "" {
				return errors.New("a redis+sentinel:// URL needs master_name=<the primary's name in the sentinels' configuration>")
			}
		}
	}
	if err != nil {
		// go-redis's words name the parameter at fault; they quote no credentials (the user info is
		// not in what it parsed).
		return fmt.Errorf("invalid Redis URL %s: %w", r, err)
	}
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err) // s is a URL this package built from a parsed one
	}
	return u
}

func (r *URL) base() string {
	if r.tls {
		return "rediss"
	}
	return "redis"
}

// String is scheme://host:port[,host:port...]: no user, password, database or query, so it can be
// logged and shown in errors and status.
func (r *URL) String() string { return r.scheme + "://" + strings.Join(r.Addrs, ",") }

// Public is the URL without its user info: database, addresses and options are kept.
func (r *URL) Public() string { return r.public }

// HasCredentials reports whether the URL holds a user or password.
func (r *URL) HasCredentials() bool { return r.user != nil }

// Settings are what a program sets on top of the URL's own options.
type Settings struct {
	// Timeout is the dial, read, write and pool timeout wherever the URL sets none.
	Timeout time.Duration
	// NoRetries sends every command once and dials every connection once: a caller with its own
	// breaker (the limiter) decides when to try again, and a retry would double the time a request
	// waits. go-redis's default is three retries and five dial attempts.
	NoRetries bool
	// Credentials, when set, authenticate every new connection to a data node, instead of the URL's
	// user info (a namespace's user whose password is in a file or comes from the broker).
	Credentials func(context.Context) (username, password string, err error)
	// TLS, when set, replaces the TLS configuration of a rediss URL; ServerName is filled in from the
	// URL. Nil verifies the server against the system roots.
	TLS *tls.Config
}

// Client is a go-redis client of a URL's topology, with what the operator needs beyond routed
// commands: a way to reach every node.
type Client struct {
	redis.UniversalClient
	url *URL
	s   Settings

	mu    sync.Mutex
	nodes map[string]*redis.Client // of a Sentinel deployment, by address (EachNode)
}

// NewClient returns a client for r. It does not connect; the first command does.
func NewClient(r *URL, s Settings) *Client {
	c := &Client{url: r, s: s}
	switch r.Topology {
	case Cluster:
		o, _ := redis.ParseClusterURL(r.goRedis) // checked by Parse
		s.apply(r, options{&o.Username, &o.Password, &o.CredentialsProviderContext, &o.TLSConfig, &o.MaxRetries, &o.DialerRetries,
			&o.ContextTimeoutEnabled, &o.DisableIdentity, []*time.Duration{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout}})
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		cc := redis.NewClusterClient(o)
		cc.AddHook(reloadOnFailure{cc})
		c.UniversalClient = cc
	case Sentinel:
		o, _ := redis.ParseFailoverURL(r.goRedis) // checked by Parse
		s.apply(r, options{&o.Username, &o.Password, &o.CredentialsProviderContext, &o.TLSConfig, &o.MaxRetries, &o.DialerRetries,
			&o.ContextTimeoutEnabled, &o.DisableIdentity, []*time.Duration{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout}})
		// The URL's user info is the data nodes' (go-redis would give it to the sentinels, but Parse
		// removed it): sentinels are reached without credentials (docs/limits.md).
		o.SentinelUsername, o.SentinelPassword = "", ""
		c.UniversalClient = redis.NewFailoverClient(o)
	default:
		c.UniversalClient = redis.NewClient(c.nodeOptions(r.goRedis))
	}
	return c
}

// nodeOptions are the options of a plain client of one server: the standalone URL's, or those of a
// node of a Sentinel deployment (raw is then the URL with that node's address).
func (c *Client) nodeOptions(raw string) *redis.Options {
	o, err := redis.ParseURL(raw)
	if err != nil {
		panic(err) // raw is a URL Parse checked, or one with only its host changed
	}
	c.s.apply(c.url, options{&o.Username, &o.Password, &o.CredentialsProviderContext, &o.TLSConfig, &o.MaxRetries, &o.DialerRetries,
		&o.ContextTimeoutEnabled, &o.DisableIdentity, []*time.Duration{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout}})
	// No CLIENT MAINT_NOTIFICATIONS on every new connection: Redis before 7.2 rejects it.
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o
}

// options points at the fields every go-redis option type (Options, ClusterOptions, FailoverOptions)
// has, so that Settings apply to all three in one place.
type options struct {
	username, password *string
	credentials        *func(context.Context) (string, string, error)
	tls                **tls.Config
	maxRetries         *int
	dialerRetries      *int
	contextTimeout     *bool
	disableIdentity    *bool
	timeouts           []*time.Duration // dial, read, write, pool
}

// apply sets the URL's credentials and s on o: the credentials provider, the timeouts the URL left
// unset, no retries, deadlines from the context, no CLIENT SETINFO on every new connection, and the
// TLS configuration.
func (s Settings) apply(r *URL, o options) {
	*o.username, *o.password = r.credentials()
	*o.credentials = s.Credentials
	for _, d := range o.timeouts {
		if *d == 0 {
			*d = s.Timeout
		}
	}
	if s.NoRetries {
		*o.maxRetries, *o.dialerRetries = noRetries(*o.maxRetries), 1
	}
	*o.contextTimeout, *o.disableIdentity = true, true
	*o.tls = s.tlsFor(*o.tls)
}

func (r *URL) credentials() (string, string) {
	if r.user == nil {
		return "", ""
	}
	pw, _ := r.user.Password()
	return r.user.Username(), pw
}

// noRetries is go-redis's "no retry" (-1) unless the URL asked for retries.
func noRetries(fromURL int) int {
	if fromURL == 0 {
		return -1
	}
	return fromURL
}

func (s Settings) tlsFor(fromURL *tls.Config) *tls.Config {
	if fromURL == nil || s.TLS == nil {
		return fromURL
	}
	t := s.TLS.Clone()
	t.ServerName = fromURL.ServerName
	return t
}

// URL is the URL the client was made for.
func (c *Client) URL() *URL { return c.url }

// Timeouts returns the longest dial, read and write timeout the URL sets (0 when it sets none).
func (r *URL) Timeouts() time.Duration {
	var ds [3]time.Duration
	switch r.Topology {
	case Cluster:
		o, _ := redis.ParseClusterURL(r.goRedis)
		ds = [3]time.Duration{o.DialTimeout, o.ReadTimeout, o.WriteTimeout}
	case Sentinel:
		o, _ := redis.ParseFailoverURL(r.goRedis)
		ds = [3]time.Duration{o.DialTimeout, o.ReadTimeout, o.WriteTimeout}
	default:
		o, _ := redis.ParseURL(r.goRedis)
		ds = [3]time.Duration{o.DialTimeout, o.ReadTimeout, o.WriteTimeout}
	}
	return max(0, ds[0], ds[1], ds[2])
}

// reloadOnFailure makes a cluster client read the slot map again as soon as a command fails for want of
// an answer (a refused connection, a timeout, a connection cut), not only on MOVED: go-redis otherwise
// keeps sending a crashed primary's slots to it until its next periodic reload (a minute), long after a
// replica took over. The reload runs in the background and go-redis folds concurrent ones into one.
type reloadOnFailure struct{ c *redis.ClusterClient }

func (reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

func (h reloadOnFailure) check(ctx context.Context, err error) {
	var reply redis.Error
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
		h.c.ReloadState(ctx)
	}
}
