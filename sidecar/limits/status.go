package limits

import "time"

// Quota is one rule's standing in its current window.
type Quota struct {
	// Rule is "<source>/<name>".
	Rule string
	// Limit is the rule's requests or tokens per window; zero means no rule of this kind applies.
	Limit int64
	// Remaining is what is left of Limit after this request's reservation (before it, when the request
	// was refused); never negative.
	Remaining int64
	// Reset is when the window ends and the counter starts again.
	Reset time.Time
}

// Status is what a client is told about its limits: the most constraining request rule and the most
// constraining token rule (the one with the least remaining; on a tie, the one that resets last).
// Budgets are not included: they are soft caps over days or months, not rates.
type Status struct {
	Requests Quota
	Tokens   Quota
}

// count is one rule's counters (requests, amount) in the window ending at end.
type count struct {
	requests, amount int64
	end              time.Time
	// skip is set for a rule that did not take part in the reservation (Phase).
	skip bool
}

// statusOf picks the most constraining quotas from the counters of every rule of rs, in rule order.
func statusOf(rs *Rules, counts []count) Status {
	var s Status
	for i := range rs.rules {
		ru := &rs.rules[i]
		c := counts[i]
		if ru.budget || c.skip {
			continue
		}
		if ru.requests > 0 {
			tighter(&s.Requests, Quota{Rule: ru.id, Limit: ru.requests, Remaining: max(0, ru.requests-c.requests), Reset: c.end})
		}
		if ru.amount > 0 {
			tighter(&s.Tokens, Quota{Rule: ru.id, Limit: ru.amount, Remaining: max(0, ru.amount-c.amount), Reset: c.end})
		}
	}
	return s
}

// tighter replaces cur with q when q constrains more.
func tighter(cur *Quota, q Quota) {
	if cur.Limit == 0 || q.Remaining < cur.Remaining || (q.Remaining == cur.Remaining && q.Reset.After(cur.Reset)) {
		*cur = q
	}
}
