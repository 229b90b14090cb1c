// Package redisacl gives every namespace with a Redis-backed policy its own Redis ACL user, limited to
// the keys of that namespace (cg:{<namespace>}:*) and to the commands the sidecar's limiter and replay
// store send. The manager holds the admin connection (--redis-url); sidecars only ever see their
// namespace's user and password (docs/limits.md, "Security").
//
// Passwords are derived, not stored: HMAC-SHA256 of a master secret and the namespace. The operator
// therefore keeps no per-namespace state and can recreate any user at any time, for instance after a
// Redis restart lost them all.
package redisacl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Commands are exactly the commands the limiter and the replay store send (sidecar/limits): the scripts
// by EVALSHA with an EVAL fallback after NOSCRIPT, the commands the scripts run (Redis checks them
// against the caller's ACL too), SET NX PX of the replay store, and the connection handshake.
var Commands = []string{"evalsha", "eval", "hmget", "hincrby", "hset", "pexpire", "set", "hello", "auth", "select"}

// minMasterLen is the shortest master secret accepted: the passwords are only as strong as it is.
const minMasterLen = 32

// dnsLabel is what Kubernetes allows as a namespace name. Such a name is its own escaped form in Redis
// keys and has no ACL glob character, so the key pattern grants exactly that namespace's keys.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Password returns the password of namespace's user: hex(HMAC-SHA256(master, "redis-user:"+namespace)).
func Password(master []byte, namespace string) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("redis-user:" + namespace))
	return hex.EncodeToString(m.Sum(nil))
}

// SetUserArgs returns the ACL SETUSER command that (re)creates namespace's user with password. "reset"
// first makes it idempotent and exact: whatever the user had before (other keys, commands, passwords)
// is dropped, so running it again repairs a user someone widened by hand.
func SetUserArgs(namespace, password string) ([]any, error) {
	if !dnsLabel.MatchString(namespace) {
		return nil, fmt.Errorf("namespace %q is not a valid Kubernetes namespace name", namespace)
	}
	args := []any{"ACL", "SETUSER", wellknown.RedisUser(namespace), "reset", "on", ">" + password,
		"~" + rediskeys.NamespacePrefix(namespace) + "*", "resetchannels", "-@all"}
	for _, c := range Commands {
		args = append(args, "+"+c)
	}
	return args, nil
}

// PublicURL returns the Redis URL without its user and password: what the controller renders into
// every policy's ConfigMap when sidecars authenticate as their namespace's user. The database and
// go-redis query parameters (timeouts, pool size) are kept.
func PublicURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		// Never repeat the URL: it holds the admin password.
		return "", errors.New("the Redis URL must be an absolute redis:// or rediss:// URL (not shown: it may hold a password)")
	}
	u.User = nil
	return u.String(), nil
}
