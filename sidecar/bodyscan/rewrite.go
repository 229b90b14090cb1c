package bodyscan

import (
	"encoding/json"
	"strconv"
)

// SetMaxTokens rewrites the max_tokens value of a scanned body to n. When n has no more digits than the
// old value (always true for a clamp) it rewrites in place, padding with spaces (JSON whitespace), so a
// large body is neither copied nor re-encoded. It returns the body to send and updates f.
func SetMaxTokens(body []byte, f *Fields, n int64) []byte {
	var buf [20]byte
	f.MaxTokens = n
	return f.rewrite(body, &f.MaxTokensSpan, strconv.AppendInt(buf[:0], n, 10))
}

// SetThinkingBudget rewrites thinking.budget_tokens of a scanned body to n (it is only ever lowered,
// so in place) and updates f.
func SetThinkingBudget(body []byte, f *Fields, n int64) []byte {
	var buf [20]byte
	f.Thinking.Budget = n
	return f.rewrite(body, &f.Thinking.BudgetSpan, strconv.AppendInt(buf[:0], n, 10))
}

// SetModel rewrites the model value of a scanned body (used for aliases).
func SetModel(body []byte, f *Fields, model string) []byte {
	lit, _ := json.Marshal(model) // a string always marshals
	f.Model = model
	return f.rewrite(body, &f.ModelSpan, lit)
}

// rewrite writes repl over the value at *sp, one of f's spans, moves *sp to cover repl, and moves the
// spans after it when repl is longer.
func (f *Fields) rewrite(body []byte, sp *Span, repl []byte) []byte {
	old := *sp
	body = replaceSpan(body, old, repl)
	*sp = Span{old.Start, old.Start + len(repl)}
	if d := len(repl) - (old.End - old.Start); d > 0 {
		f.shiftAfter(old.Start, d)
	}
	return body
}

// shiftAfter moves the spans that start after pos by d bytes (after a growing rewrite).
func (f *Fields) shiftAfter(pos, d int) {
	if f.HasModel && f.ModelSpan.Start > pos {
		f.ModelSpan.Start += d
		f.ModelSpan.End += d
	}
	if f.HasMaxTokens && f.MaxTokensSpan.Start > pos {
		f.MaxTokensSpan.Start += d
		f.MaxTokensSpan.End += d
	}
	if f.HasUserID && f.UserIDSpan.Start > pos {
		f.UserIDSpan.Start += d
		f.UserIDSpan.End += d
	}
	if f.Thinking.HasBudget && f.Thinking.BudgetSpan.Start > pos {
		f.Thinking.BudgetSpan.Start += d
		f.Thinking.BudgetSpan.End += d
	}
}

// replaceSpan writes repl over sp: in place with space padding when it fits, else into a new slice.
func replaceSpan(body []byte, sp Span, repl []byte) []byte {
	old := sp.End - sp.Start
	if len(repl) <= old {
		copy(body[sp.Start:], repl)
		for i := sp.Start + len(repl); i < sp.End; i++ {
			body[i] = ' '
		}
		return body
	}
	out := make([]byte, 0, len(body)+len(repl)-old)
	out = append(out, body[:sp.Start]...)
	out = append(out, repl...)
	return append(out, body[sp.End:]...)
}
