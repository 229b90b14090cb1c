package rediskeys

import (
	"strconv"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// KindLimit and KindBudget tell a limit rule's counter from a budget's.
const (
	KindLimit  = "limit"
	KindBudget = "budget"
)

// Scope is a rule's identity in counter keys: who set it (p:<policy> for a policy's rule; t:<tenant>
// for a tenant's, shared by every policy and pod of the namespace, which is the point of a tenant
// ceiling), whether it is a limit or a budget, and its name; each part escaped.
func Scope(policy, tenant, source, kind, name string) string {
	owner := "p:" + Part(policy)
	if source == policyconfig.SourceTenant {
		owner = "t:" + Part(tenant)
	}
	return owner + ":" + kind + ":" + Part(name)
}

// Counter is the key of one rule's counter: prefix (NamespacePrefix), the rule's scope, its window, the
// kind of key it charges and the charged value (escaped here), and the window's start. The sidecar's
// limiter writes it; the operator reads budgets' counters to show spend.
func Counter(prefix, scope, window, keyKind, value string, start time.Time) string {
	var b strings.Builder
	b.Grow(96)
	b.WriteString(prefix)
	b.WriteString(scope)
	b.WriteByte(':')
	b.WriteString(window)
	b.WriteByte(':')
	b.WriteString(keyKind)
	b.WriteByte('=')
	b.WriteString(Part(value))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(start.Unix(), 10))
	return b.String()
}

// Window returns the start of the window containing t and when it ends: fixed windows aligned to UTC
// (minute, hour, day, ISO week from Monday, calendar month; anything else is a day).
func Window(window string, t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch window {
	case policyconfig.WindowMinute:
		start = t.Truncate(time.Minute)
		return start, start.Add(time.Minute)
	case policyconfig.WindowHour:
		start = t.Truncate(time.Hour)
		return start, start.Add(time.Hour)
	case policyconfig.WindowWeek:
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		start = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
		return start, start.AddDate(0, 0, 7)
	case policyconfig.WindowMonth:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	default: // Day
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	}
}
