package redisconn

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, url string
		// want: topology, String, Public, DB, MasterName, the addresses
		topology      Topology
		str, public   string
		db            int
		master        string
		addrs         []string
		timeouts      time.Duration
		err           string
		hasCredential bool
	}{
		{name: "standalone", url: "redis://127.0.0.1:6379/0", topology: Standalone,
			str: "redis://127.0.0.1:6379", public: "redis://127.0.0.1:6379/0", addrs: []string{"127.0.0.1:6379"}},
		{name: "standalone with credentials and options", url: "rediss://user:hunter2@redis.example:6380/1?dial_timeout=1s&read_timeout=3",
			topology: Standalone, str: "rediss://redis.example:6380", public: "rediss://redis.example:6380/1?dial_timeout=1s&read_timeout=3",
			db: 1, addrs: []string{"redis.example:6380"}, timeouts: 3 * time.Second, hasCredential: true},
		{name: "default port", url: "redis://redis", topology: Standalone, str: "redis://redis:6379", public: "redis://redis",
			addrs: []string{"redis:6379"}},
		{name: "cluster", url: "redis+cluster://admin:hunter2@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000&read_timeout=2s",
			topology: Cluster, str: "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
			public: "redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000&read_timeout=2s",
			addrs:  []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}, timeouts: 2 * time.Second, hasCredential: true},
		{name: "cluster, database 0", url: "rediss+cluster://c.example:6380/0", topology: Cluster,
			str: "rediss+cluster://c.example:6380", public: "rediss+cluster://c.example:6380/0", addrs: []string{"c.example:6380"}},
		{name: "sentinel", url: "redis+sentinel://:hunter2@s1:26379/2?master_name=cg&addr=s2:26379",
			topology: Sentinel, str: "redis+sentinel://s1:26379,s2:26379", public: "redis+sentinel://s1:26379/2?master_name=cg&addr=s2:26379",
			db: 2, master: "cg", addrs: []string{"s1:26379", "s2:26379"}, hasCredential: true},

		{name: "unknown scheme", url: "http://user:hunter2@x", err: "must start with redis://, rediss://, redis+cluster://"},
		{name: "unparsable", url: "redis://:hunter2@%zz", err: "failed to parse the Redis URL"},
		{name: "no host", url: "redis://user:hunter2@", err: "names no host"},
		{name: "bad port", url: "redis://:hunter2@host:notaport", err: "failed to parse"},
		{name: "seeds on a standalone URL", url: "redis://:hunter2@a:1?addr=b:2", err: "only redis+cluster:// and redis+sentinel:// URLs take"},
		{name: "bad seed", url: "redis+cluster://:hunter2@a:1?addr=b", err: `addr parameter must be host:port, got "b"`},
		{name: "cluster database", url: "redis+cluster://:hunter2@a:1/3", err: `database 0 only; the URL selects "3"`},
		{name: "sentinel without master", url: "redis+sentinel://:hunter2@s:26379", err: "needs master_name="},
		{name: "password in the query", url: "redis+sentinel://s:26379?master_name=m&password=hunter2", err: "must not hold credentials in its query (password)"},
		{name: "sentinel password in the query", url: "redis+sentinel://s:26379?master_name=m&sentinel_password=hunter2", err: "(sentinel_password)"},
		{name: "unknown option", url: "redis+cluster://:hunter2@a:1?colour=blue", err: "invalid Redis URL redis+cluster://a:1: redis: unexpected option: colour"},
		{name: "bad option value", url: "redis://:hunter2@a:1?dial_timeout=soon", err: "invalid Redis URL redis://a:1: redis: invalid dial_timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := Parse(c.url)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Parse: %v, want an error containing %q", err, c.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Topology != c.topology || u.String() != c.str || u.Public() != c.public || u.DB != c.db || u.MasterName != c.master ||
				!slices.Equal(u.Addrs, c.addrs) || u.Timeouts() != c.timeouts || u.HasCredentials() != c.hasCredential {
				t.Errorf("Parse = {%s %s %s db %d master %q %v %v creds %v}", u.Topology, u, u.Public(), u.DB, u.MasterName, u.Addrs, u.Timeouts(), u.HasCredentials())
			}
			if strings.Contains(u.String()+u.Public(), "hunter2") {
				t.Errorf("String or Public leaks the password")
			}
		})
	}
}

// TestClientOptions: the URL's credentials reach the data nodes, the Settings fill what the URL leaves
// unset, and NoRetries turns go-redis's retries off unless the URL asked for some.
func TestClientOptions(t *testing.T) {
	u, err := Parse("redis://admin:hunter2@127.0.0.1:1/4?read_timeout=3s&max_retries=2")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(u, Settings{Timeout: 150 * time.Millisecond, NoRetries: true})
	defer func() { _ = c.Close() }()
	o := c.nodeOptions(u.goRedis)
	if o.Username != "admin" || o.Password != "hunter2" || o.DB != 4 || o.ReadTimeout != 3*time.Second ||
		o.DialTimeout != 150*time.Millisecond || o.MaxRetries != 2 || o.DialerRetries != 1 || !o.DisableIdentity {
		t.Errorf("options: %+v", o)
	}
}
