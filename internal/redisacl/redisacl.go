// Package redisacl gives every namespace with a Redis-backed policy its own Redis ACL user, limited to
// the keys of that namespace (cg:{<namespace>}:*) and to calling claude-guard's Redis functions
// (internal/redislib), which the manager loads. The manager holds the admin connection (--redis-url);
// sidecars only ever see their namespace's user and password (docs/limits.md, "Security").
//
// Passwords are derived, not stored: HMAC-SHA256 of a master secret, the namespace's name and its UID.
// The operator therefore keeps no per-namespace state and can recreate any user at any time, for
// instance after a Redis restart lost them all; and a namespace deleted and created again (a new UID)
// gets a new password.
package redisacl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"

	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Grants returns the commands a namespace's user gets after "-@all", for sidecars whose connections
// select database db:
//
//   - FCALL of claude-guard's functions by name and nothing else of the kind: no other function, no
//     EVAL or EVALSHA, no SCRIPT, no FUNCTION. A user runs no code of its own, so it can neither keep
//     Redis busy with a loop (every other client would get BUSY) nor unload the library others call;
//   - the commands those functions run (redislib.Commands): Redis checks them against the caller's ACL
//     (TestFunctionsNeedTheirCommands), so they cannot be withheld. HINCRBY and INCR store integers
//     only (under field and key names of the caller's choosing: docs/limits.md, "Security", says what
//     that leaves); the SET of the replay store and the HSET of the scripts before are no longer needed;
//   - HGET and HGETALL, for the sidecar to read the namespace's revocations (rediskeys.RevocationsKey),
//     which the key patterns of SetUserArgs let it read and not write;
//   - the connection handshake (HELLO, AUTH), and SELECT of db only (go-redis sends none for 0);
//   - on a Redis Cluster, CLUSTER SLOTS, which go-redis reads to route each command to its slot's
//     primary (it names the nodes and their slots, nothing of any key).
func Grants(db int, cluster bool) []string {
	g := make([]string, 0, len(redislib.Functions)+len(redislib.Commands)+5)
	for _, f := range redislib.Functions {
		g = append(g, "+fcall|"+f)
	}
	for _, c := range redislib.Commands {
		g = append(g, "+"+c)
	}
	g = append(g, "+hget", "+hgetall", "+hello", "+auth")
	if db != 0 {
		g = append(g, "+select|"+strconv.Itoa(db))
	}
	if cluster {
		g = append(g, "+cluster|slots", "+command")
	}
	return g
}

// minMasterLen is the shortest master secret accepted: the passwords are only as strong as it is.
const minMasterLen = 32

// dnsLabel is what Kubernetes allows as a namespace name. Such a name is its own escaped form in Redis
// keys and has no ACL glob character, so the key pattern grants exactly that namespace's keys.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Password returns the password of the user of namespace, whose UID is uid:
// hex(HMAC-SHA256(master, "redis-user:" + namespace + ":" + uid)). A namespace name has no ':', so no
// two (namespace, UID) pairs share an input.
//
// The UID is what makes a deleted and recreated namespace's password new: the Secret holding the old one
// was readable in the old namespace (by its admins, by anyone who could mount it), and the user name
// (cg-<namespace>) stays the same. Deriving from the UID keeps the operator stateless: the UID is in the
// API server, the same for every manager replica, and needs no read the controller does not do anyway.
func Password(master []byte, namespace, uid string) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("redis-user:" + namespace + ":" + uid))
	return hex.EncodeToString(m.Sum(nil))
}

// SetUserArgs returns the ACL SETUSER command that (re)creates namespace's user with password, for
// sidecars on database db: every key of the namespace (~cg:{<namespace>}:*) and read-only access (%R~)
// to its revocations, which only the operator writes. "reset" first makes it idempotent and exact: whatever the user had before
// (other keys, commands, passwords) is dropped, so running it again repairs a user someone widened by
// hand.
func SetUserArgs(namespace, password string, db int, cluster bool) ([]any, error) {
	if !dnsLabel.MatchString(namespace) {
		return nil, fmt.Errorf("namespace %q is not a valid Kubernetes namespace name", namespace)
	}
	args := []any{"ACL", "SETUSER", wellknown.RedisUser(namespace), "reset", "on", ">" + password,
		"~" + rediskeys.NamespacePrefix(namespace) + "*", "%R~" + rediskeys.RevocationsKey(namespace),
		"resetchannels", "-@all"}
	for _, g := range Grants(db, cluster) {
		args = append(args, g)
	}
	return args, nil
}

// PublicURL returns the Redis URL without its user and password: what the controller renders into
// every policy's ConfigMap when sidecars authenticate as their namespace's user. The topology, the
// database and go-redis query parameters (timeouts, pool size, seed nodes, master name) are kept.
func PublicURL(raw string) (string, error) {
	u, err := redisconn.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Public(), nil
}
