// Package bodyscan reads the few fields the sidecar decides on (model, max_tokens, stream) from a
// Messages API request body in one pass, without decoding the prompt.
//
// The scanner validates the whole document as strict JSON (RFC 8259, UTF-8) because the policy point and
// the upstream must read the same request: a body that one parser accepts and another reads differently
// (duplicate keys, invalid UTF-8, a max_tokens of 1e3) is how a policy gets bypassed. So anything that is
// not plain, unambiguous JSON is refused, and the decided-on fields must each appear at most once at the
// top level with the one type the API accepts.
//
// It records the byte span of each field's value so a caller can rewrite it in place (see Rewrite).
package bodyscan

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted.
const MaxDepth = 512

// Span is a half-open byte range [Start, End) of a value in the scanned body.
type Span struct{ Start, End int }

// Fields are the top-level request fields the sidecar decides on.
type Fields struct {
	// Model is the decoded "model" string; HasModel says whether it was present.
	Model     string
	HasModel  bool
	ModelSpan Span // includes the quotes

	// MaxTokens is "max_tokens", a positive integer.
	MaxTokens     int64
	HasMaxTokens  bool
	MaxTokensSpan Span

	// Stream is "stream" (a boolean).
	Stream    bool
	HasStream bool

	// Thinking is what the "thinking" object (extended thinking) says: its "type" and its
	// "budget_tokens", which the API requires to stay below max_tokens, so a clamp must lower it too.
	// HasThinking is set when "thinking" is an object; other values are left to the upstream to refuse.
	Thinking    Thinking
	HasThinking bool

	// UserIDSpan is where "metadata.user_id", the SDKs' caller id (Claude Code puts its session id in
	// it), is, when HasUserID (a string); read it with UserID.
	UserIDSpan Span
	HasUserID  bool
}

// UserID decodes metadata.user_id from body, the body f describes; "" without one.
func (f *Fields) UserID(body []byte) string {
	if !f.HasUserID {
		return ""
	}
	v, err := decodeString(body[f.UserIDSpan.Start:f.UserIDSpan.End])
	if err != nil {
		return "" // validated by Scan
	}
	return v
}

// Thinking is the part of the "thinking" object the sidecar reads.
type Thinking struct {
	// Type is "enabled", "disabled", "adaptive" or a type from the future.
	Type string
	// Budget is "budget_tokens", a positive integer; HasBudget says whether it was present.
	Budget     int64
	HasBudget  bool
	BudgetSpan Span
}

// ThinkingEnabled is the thinking type whose budget_tokens counts against max_tokens.
const ThinkingEnabled = "enabled"

// Error says why a body was refused. Its message never quotes the body.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Reason, e.Offset) }

type scanner struct {
	b []byte
	i int
	// marks has a bit set for every byte of b a string scan stops at (markSpecials).
	marks []uint64
}

// newScanner marks b's special bytes in a bitmap from the pool; putMarks returns it.
func newScanner(b []byte) (scanner, *[]uint64) {
	p := getMarks(len(b))
	markSpecials(b, *p)
	return scanner{b: b, marks: *p}, p
}

func (s *scanner) fail(reason string) error { return &Error{Offset: s.i, Reason: reason} }

// Scan validates body as a single JSON object and returns its decided-on fields.
func Scan(body []byte) (Fields, error) {
	s, marks := newScanner(body)
	defer putMarks(marks)
	return s.scan()
}

func (s *scanner) scan() (Fields, error) {
	var f Fields
	s.ws()
	if s.i >= len(s.b) {
		return f, s.fail("request body is empty")
	}
	if s.b[s.i] != '{' {
		return f, s.fail("request body must be a JSON object")
	}
	if err := s.topObject(&f); err != nil {
		return f, err
	}
	s.ws()
	if s.i != len(s.b) {
		return f, s.fail("unexpected data after the JSON object")
	}
	return f, nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// topObject scans the outer object, looking at keys. It is one loop over the bytes with the key cases
// inline, on purpose: it is the per-request hot path (every body byte passes here once), and a helper
// per key would cost calls and bounds checks per byte.
func (s *scanner) topObject(f *Fields) error {
	s.i++ // '{'
	seenThinking, seenMetadata := false, false
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected a string key")
		}
		keyStart := s.i
		escaped, err := s.skipString()
		if err != nil {
			return err
		}
		key := s.b[keyStart+1 : s.i-1]
		var name string
		if escaped {
			// A key spelled with escapes ("mod\u0065l") is the same key to the upstream.
			name, err = decodeString(s.b[keyStart:s.i])
			if err != nil {
				s.i = keyStart
				return s.fail(err.Error())
			}
		} else {
			switch string(key) { // no allocation: the compiler recognises this form
			case "model", "max_tokens", "stream", "thinking", "metadata":
				name = string(key)
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected ':' after object key")
		}
		s.i++
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of JSON")
		}
		switch name {
		case "model":
			if f.HasModel {
				return s.fail(`duplicate "model" field`)
			}
			if err := s.model(f); err != nil {
				return err
			}
		case "max_tokens":
			if f.HasMaxTokens {
				return s.fail(`duplicate "max_tokens" field`)
			}
			if err := s.maxTokens(f); err != nil {
				return err
			}
		case "stream":
			if f.HasStream {
				return s.fail(`duplicate "stream" field`)
			}
			if err := s.stream(f); err != nil {
				return err
			}
		case "metadata":
			if seenMetadata {
				return s.fail(`duplicate "metadata" field`)
			}
			seenMetadata = true
			if err := s.metadata(f); err != nil {
				return err
			}
		case "thinking":
			if seenThinking {
				return s.fail(`duplicate "thinking" field`)
			}
			seenThinking = true
			if err := s.thinking(f); err != nil {
				return err
			}
		default:
			if err := s.value(1); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of JSON")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) model(f *Fields) error {
	if s.b[s.i] != '"' {
		return s.fail(`"model" must be a string`)
	}
	start := s.i
	m, err := s.stringValue()
	if err != nil {
		return err
	}
	f.HasModel, f.Model, f.ModelSpan = true, m, Span{start, s.i}
	return nil
}

func (s *scanner) maxTokens(f *Fields) error {
	n, sp, err := s.positiveInt("max_tokens")
	if err != nil {
		return err
	}
	f.HasMaxTokens, f.MaxTokens, f.MaxTokensSpan = true, n, sp
	return nil
}

// positiveInt reads a positive integer written without sign, fraction or exponent (what the API
// accepts for token counts), refusing values that do not fit an int64.
func (s *scanner) positiveInt(field string) (int64, Span, error) {
	start := s.i
	if err := s.number(); err != nil {
		return 0, Span{}, err
	}
	raw := s.b[start:s.i]
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			s.i = start
			return 0, Span{}, s.fail(`"` + field + `" must be a positive integer without sign, fraction or exponent`)
		}
		if n > (math.MaxInt64-9)/10 {
			s.i = start
			return 0, Span{}, s.fail(`"` + field + `" is too large`)
		}
		n = n*10 + int64(c-'0')
	}
	if n < 1 {
		s.i = start
		return 0, Span{}, s.fail(`"` + field + `" must be at least 1`)
	}
	return n, Span{start, s.i}, nil
}

// thinking reads the "thinking" object's type and budget_tokens; every other member is validated and
// skipped. A value that is not an object is skipped too: the upstream refuses it, and it carries no
// budget a clamp would have to lower.
func (s *scanner) thinking(f *Fields) error {
	if s.b[s.i] != '{' {
		return s.value(1)
	}
	f.HasThinking = true
	t := &f.Thinking
	seenType := false
	s.i++ // '{'
	for first := true; ; first = false {
		key, done, err := s.member(first)
		if err != nil || done {
			return err
		}
		switch string(key) {
		case "type":
			if seenType {
				return s.fail(`duplicate "thinking.type" field`)
			}
			seenType = true
			if s.b[s.i] != '"' {
				return s.fail(`"thinking.type" must be a string`)
			}
			t.Type, err = s.stringValue()
		case "budget_tokens":
			if t.HasBudget {
				return s.fail(`duplicate "thinking.budget_tokens" field`)
			}
			t.Budget, t.BudgetSpan, err = s.positiveInt("thinking.budget_tokens")
			t.HasBudget = err == nil
		default:
			err = s.value(2)
		}
		if err != nil {
			return err
		}
	}
}

// metadata finds "metadata.user_id" when it is a string (its span: it is decoded only when asked for,
// see Fields.UserID); everything else is validated and skipped.
func (s *scanner) metadata(f *Fields) error {
	if s.b[s.i] != '{' {
		return s.value(1)
	}
	seen := false
	s.i++ // '{'
	for first := true; ; first = false {
		key, done, err := s.member(first)
		if err != nil || done {
			return err
		}
		switch {
		case string(key) != "user_id":
			err = s.value(2)
		case seen:
			return s.fail(`duplicate "metadata.user_id" field`)
		case s.b[s.i] != '"':
			seen = true
			err = s.value(2) // not a string: no caller id
		default:
			seen = true
			start := s.i
			_, err = s.skipString()
			f.HasUserID, f.UserIDSpan = err == nil, Span{start, s.i}
		}
		if err != nil {
			return err
		}
	}
}

// member moves to the next member of the nested object being read (after its '{'): it returns the
// member's key, with the scanner at its value, or done after the closing brace. first says no member
// was read yet. It is for the small nested objects the sidecar reads (the top level has its own
// inlined loop); a loop over it, unlike a callback, lets the scanner stay on the stack.
func (s *scanner) member(first bool) (key []byte, done bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, s.fail("unexpected end of JSON")
	}
	switch c := s.b[s.i]; {
	case c == '}':
		s.i++
		return nil, true, nil
	case !first && c != ',':
		return nil, false, s.fail("expected ',' or '}' in object")
	case !first:
		s.i++
		s.ws()
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, s.fail("expected a string key")
	}
	if key, err = s.key(); err != nil {
		return nil, false, err
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, false, s.fail("expected ':' after object key")
	}
	s.i++
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, s.fail("unexpected end of JSON")
	}
	return key, false, nil
}

// key reads the string at s.i (an object key, or a value stringValue converts): the raw bytes when it
// has no escapes, else its decoded form.
func (s *scanner) key() ([]byte, error) {
	start := s.i
	escaped, err := s.skipString()
	if err != nil {
		return nil, err
	}
	if !escaped {
		return s.b[start+1 : s.i-1], nil
	}
	v, err := decodeString(s.b[start:s.i])
	if err != nil {
		s.i = start
		return nil, s.fail(err.Error())
	}
	return []byte(v), nil
}

// stringValue reads the string at s.i and returns it decoded.
func (s *scanner) stringValue() (string, error) {
	v, err := s.key()
	return string(v), err
}

func (s *scanner) stream(f *Fields) error {
	switch {
	case s.lit("true"):
		f.Stream = true
	case s.lit("false"):
		f.Stream = false
	default:
		return s.fail(`"stream" must be true or false`)
	}
	f.HasStream = true
	return nil
}

func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// value skips any JSON value, validating it.
func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return s.fail("unexpected end of JSON")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.skipString()
		return err
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case s.lit("true"), s.lit("false"), s.lit("null"):
		return nil
	default:
		return s.fail("invalid JSON value")
	}
}

func (s *scanner) object(depth int) error {
	if depth > MaxDepth {
		return s.fail("JSON nesting is too deep")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected a string key")
		}
		if _, err := s.skipString(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected ':' after object key")
		}
		s.i++
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of JSON")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.fail("JSON nesting is too deep")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of JSON")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or ']' in array")
		}
	}
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return s.fail("invalid number")
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("invalid number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("invalid number")
		}
	}
	return nil
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special returns a mask with the high bit set in every byte of w that is '"', '\\', a control
// character or non-ASCII. The mask is exact per byte: each test keeps its arithmetic inside the byte
// (low seven bits plus at most 0x7f), so no carry or borrow crosses into a neighbour.
func special(w uint64) uint64 {
	const lo7 = ones * 0x7f
	x := w & lo7
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (^(q + lo7) | ^(bs + lo7) | ^(x + ones*0x60) | w) & highs
}

// skipString moves past the string starting at s.i (a '"'), validating escapes and UTF-8. It reports
// whether the string contained escapes. It visits only the marked bytes (see markSpecials), so plain
// text costs nothing here. Within a word of marks it clears what each visit consumed instead of
// reloading the word: the next mark then comes from a few register operations, which keeps
// escape-dense text (source code, JSON in JSON) fast. The commonest marks (the closing quote, a
// two-byte escape such as \n, a letter in two or three bytes of UTF-8) are handled inline, the rest by
// step.
func (s *scanner) skipString() (escaped bool, err error) {
	b, marks := s.b, s.marks
	i := s.i + 1 // the first byte not yet consumed
	for w := i >> 6; w < len(marks); w++ {
		base := w << 6
		m := marks[w]
		if d := i - base; d > 0 {
			m &= ^uint64(0) << d // consumed by the previous word's last visit, or before the string
		}
		for m != 0 {
			bit := bits.TrailingZeros64(m)
			k := base + bit
			n := 0
			switch c := b[k]; {
			case c == '"':
				s.i = k + 1
				return escaped, nil
			case c == '\\' && k+1 < len(b) && simpleEscape[b[k+1]]:
				escaped, n = true, 2
			default:
				if n = utf8Plain(b, k); n == 0 {
					next, end, err := s.step(k, &escaped)
					if err != nil || end {
						return escaped, err
					}
					n = next - k
				}
			}
			i = k + n
			m &= ^uint64(0) << (bit + n) // 0 once the visit reaches the next word
		}
	}
	s.i = len(b)
	return escaped, s.fail("unterminated string")
}

// step handles the special byte at k inside a string: it returns where scanning continues, or end
// (with s.i past the closing quote), or an error.
func (s *scanner) step(k int, escaped *bool) (next int, end bool, err error) {
	b := s.b
	switch c := b[k]; {
	case c == '"':
		s.i = k + 1
		return 0, true, nil
	case c == '\\':
		*escaped = true
		if k+1 >= len(b) {
			s.i = k
			return 0, false, s.fail("unterminated string")
		}
		switch b[k+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			return k + 2, false, nil
		case 'u':
			if k+6 > len(b) || !isHex4(b[k+2:k+6]) {
				s.i = k
				return 0, false, s.fail(`invalid \u escape`)
			}
			return k + 6, false, nil
		default:
			s.i = k
			return 0, false, s.fail("invalid escape in string")
		}
	case c < 0x20:
		s.i = k
		return 0, false, s.fail("control character in string")
	default: // non-ASCII
		r, size := utf8.DecodeRune(b[k:])
		if r == utf8.RuneError && size == 1 {
			s.i = k
			return 0, false, s.fail("invalid UTF-8 in string")
		}
		return k + size, false, nil
	}
}

// utf8Plain returns the length of the two- or three-byte UTF-8 sequence at k when it is one whose
// validity shows from its lead byte's range alone (U+0080 to U+FFFF less the leads E0 and ED, which
// restrict their second byte): the letters and symbols of most text and code. It returns 0 for anything
// else, which step then decodes. It is inline on purpose: a call per non-ASCII character is a fifth of
// the scan of a code conversation.
func utf8Plain(b []byte, k int) int {
	c := b[k]
	switch {
	case c >= 0xc2 && c < 0xe0:
		if k+1 < len(b) && b[k+1]&0xc0 == 0x80 {
			return 2
		}
	case c > 0xe0 && c < 0xf0 && c != 0xed:
		if k+2 < len(b) && b[k+1]&0xc0 == 0x80 && b[k+2]&0xc0 == 0x80 {
			return 3
		}
	}
	return 0
}

// simpleEscape marks the characters that may follow a backslash to form a two-byte escape.
var simpleEscape = [256]bool{'"': true, '\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// decodeString decodes a validated JSON string literal (with quotes). Unpaired surrogates are refused:
// parsers disagree on what they mean.
func decodeString(lit []byte) (string, error) {
	lit = lit[1 : len(lit)-1]
	out := make([]byte, 0, len(lit))
	for i := 0; i < len(lit); {
		c := lit[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch lit[i+1] {
		case '"', '\\', '/':
			out = append(out, lit[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(lit[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+6 > len(lit) || lit[i] != '\\' || lit[i+1] != 'u' {
					return "", fmt.Errorf("unpaired UTF-16 surrogate in string")
				}
				r2 := hex4(lit[i+2 : i+6])
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", fmt.Errorf("unpaired UTF-16 surrogate in string")
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		}
		i += 2
	}
	return string(out), nil
}

func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
}

// Members validates doc as one JSON object (as Scan does, without the decided-on field rules) and calls
// fn with each of its members in order: the key, decoded when it was written with escapes, and the
// value's raw bytes. It is how the proxy reads a response's usage without decoding the generated content
// around it. fn must not keep key past its call.
func Members(doc []byte, fn func(key, value []byte)) error {
	s, marks := newScanner(doc)
	defer putMarks(marks)
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.fail("document must be a JSON object")
	}
	s.i++
	for first := true; ; first = false {
		key, done, err := s.member(first)
		if err != nil {
			return err
		}
		if done {
			break
		}
		vs := s.i
		if err := s.value(1); err != nil {
			return err
		}
		fn(key, s.b[vs:s.i])
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail("unexpected data after the JSON object")
	}
	return nil
}
