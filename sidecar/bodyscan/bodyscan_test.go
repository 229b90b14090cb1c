package bodyscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    Fields
		userID  string
		wantErr string
	}{
		{name: "typical", body: `{"model":"claude-haiku-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			want: Fields{Model: "claude-haiku-4-5", HasModel: true, MaxTokens: 1024, HasMaxTokens: true, Stream: true, HasStream: true}},
		{name: "whitespace and order", body: " {\n\t\"messages\": [] , \"stream\" : false, \"max_tokens\" : 7 ,\"model\":\"m\"}\r\n",
			want: Fields{Model: "m", HasModel: true, MaxTokens: 7, HasMaxTokens: true, HasStream: true}},
		{name: "no decided fields", body: `{"messages":[{"a":[1,2.5e-3,-0,true,false,null,{"x":"\u00e9\n"}]}]}`},
		{name: "empty object", body: `{}`},
		{name: "escaped key is the same key", body: `{"mod\u0065l":"claude-opus-4-1"}`, want: Fields{Model: "claude-opus-4-1", HasModel: true}},
		{name: "escaped model", body: `{"model":"claude\u002dopus"}`, want: Fields{Model: "claude-opus", HasModel: true}},
		{name: "nested model is not the model", body: `{"metadata":{"model":"x","max_tokens":"y"},"model":"m"}`, want: Fields{Model: "m", HasModel: true}},
		{name: "utf8 in prompt", body: `{"messages":"日本語 ✓ 😀","model":"m"}`, want: Fields{Model: "m", HasModel: true}},
		{name: "surrogate pair in model", body: `{"model":"\ud83d\ude00"}`, want: Fields{Model: "😀", HasModel: true}},
		{name: "thinking enabled", body: `{"max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999}}`,
			want: Fields{MaxTokens: 32000, HasMaxTokens: true, HasThinking: true, Thinking: Thinking{Type: "enabled", Budget: 31999, HasBudget: true}}},
		{name: "thinking escaped keys, other members", body: `{"thinking":{"display":{"a":[1]},"bud\u0067et_tokens":2048,"t\u0079pe":"en\u0061bled"}}`,
			want: Fields{HasThinking: true, Thinking: Thinking{Type: "enabled", Budget: 2048, HasBudget: true}}},
		{name: "thinking adaptive", body: `{"thinking":{"type":"adaptive"}}`, want: Fields{HasThinking: true, Thinking: Thinking{Type: "adaptive"}}},
		{name: "thinking empty object", body: `{"thinking":{}}`, want: Fields{HasThinking: true}},
		{name: "thinking null is the upstream's to refuse", body: `{"thinking":null}`},
		{name: "metadata user id", body: `{"metadata":{"user_id":"{\"session_id\":\"s-1\"}","other":[1]}}`, want: Fields{HasUserID: true}, userID: `{"session_id":"s-1"}`},
		{name: "metadata user id not a string", body: `{"metadata":{"user_id":7}}`},
		{name: "nested budget is not the budget", body: `{"metadata":{"thinking":{"budget_tokens":5}}}`},

		{name: "empty", body: ``, wantErr: "empty"},
		{name: "array", body: `[]`, wantErr: "must be a JSON object"},
		{name: "duplicate model", body: `{"model":"a","model":"b"}`, wantErr: `duplicate "model"`},
		{name: "duplicate model via escape", body: `{"model":"a","m\u006fdel":"b"}`, wantErr: `duplicate "model"`},
		{name: "duplicate max_tokens", body: `{"max_tokens":1,"max_tokens":100000}`, wantErr: `duplicate "max_tokens"`},
		{name: "duplicate stream", body: `{"stream":false,"stream":true}`, wantErr: `duplicate "stream"`},
		{name: "max_tokens float", body: `{"max_tokens":1024.0}`, wantErr: "positive integer"},
		{name: "max_tokens exponent", body: `{"max_tokens":1e3}`, wantErr: "positive integer"},
		{name: "max_tokens negative", body: `{"max_tokens":-5}`, wantErr: "positive integer"},
		{name: "max_tokens zero", body: `{"max_tokens":0}`, wantErr: "at least 1"},
		{name: "max_tokens string", body: `{"max_tokens":"5"}`, wantErr: "invalid number"},
		{name: "max_tokens huge", body: `{"max_tokens":99999999999999999999}`, wantErr: "too large"},
		{name: "model not string", body: `{"model":5}`, wantErr: `"model" must be a string`},
		{name: "stream null", body: `{"stream":null}`, wantErr: `"stream" must be true or false`},
		{name: "stream string", body: `{"stream":"true"}`, wantErr: `"stream" must be true or false`},
		{name: "trailing data", body: `{} {}`, wantErr: "after the JSON object"},
		{name: "trailing comma", body: `{"a":1,}`, wantErr: "expected a string key"},
		{name: "invalid utf8", body: "{\"messages\":\"\xff\"}", wantErr: "invalid UTF-8"},
		{name: "control char", body: "{\"messages\":\"a\x01b\"}", wantErr: "control character"},
		{name: "bad escape", body: `{"messages":"\x"}`, wantErr: "invalid escape"},
		{name: "short unicode escape", body: `{"messages":"\u12"}`, wantErr: `invalid \u escape`},
		{name: "lone surrogate in model", body: `{"model":"\ud800"}`, wantErr: "surrogate"},
		{name: "unterminated", body: `{"model":"abc`, wantErr: "unterminated"},
		{name: "leading zero", body: `{"a":01}`, wantErr: "expected ',' or '}'"},
		{name: "bare word", body: `{"a":nul}`, wantErr: "invalid JSON value"},
		{name: "bom", body: "\xef\xbb\xbf{}", wantErr: "must be a JSON object"},
		{name: "too deep", body: `{"a":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, wantErr: "too deep"},
		{name: "single quote", body: `{'model':'x'}`, wantErr: "expected a string key"},
		{name: "duplicate thinking", body: `{"thinking":{"type":"disabled"},"thinking":{"type":"enabled","budget_tokens":9000}}`, wantErr: `duplicate "thinking"`},
		{name: "duplicate thinking budget", body: `{"thinking":{"budget_tokens":1024,"budget_tokens":99999}}`, wantErr: `duplicate "thinking.budget_tokens"`},
		{name: "duplicate metadata", body: `{"metadata":{},"metadata":{"user_id":"x"}}`, wantErr: `duplicate "metadata"`},
		{name: "duplicate user id", body: `{"metadata":{"user_id":"a","user_\u0069d":"b"}}`, wantErr: `duplicate "metadata.user_id"`},
		{name: "duplicate thinking type", body: `{"thinking":{"type":"disabled","type":"enabled"}}`, wantErr: `duplicate "thinking.type"`},
		{name: "thinking budget float", body: `{"thinking":{"budget_tokens":1024.5}}`, wantErr: `"thinking.budget_tokens" must be a positive integer`},
		{name: "thinking budget zero", body: `{"thinking":{"budget_tokens":0}}`, wantErr: `"thinking.budget_tokens" must be at least 1`},
		{name: "thinking type not a string", body: `{"thinking":{"type":1}}`, wantErr: `"thinking.type" must be a string`},
		{name: "thinking unterminated", body: `{"thinking":{"type":"enabled"`, wantErr: "unexpected end"},
		{name: "thinking key unterminated", body: `{"thinking":{"ty`, wantErr: "unterminated"},
		{name: "metadata key unterminated", body: `{"metadata":{"us`, wantErr: "unterminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Scan([]byte(c.body))
			if c.wantErr != "" {
				var se *Error
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.As(err, &se) {
					t.Fatalf("Scan() error = %v, want *Error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Scan() error = %v", err)
			}
			if uid := got.UserID([]byte(c.body)); uid != c.userID {
				t.Fatalf("UserID() = %q, want %q", uid, c.userID)
			}
			got.ModelSpan, got.MaxTokensSpan, got.Thinking.BudgetSpan, got.UserIDSpan = Span{}, Span{}, Span{}, Span{}
			if got != c.want {
				t.Fatalf("Scan() = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSpans(t *testing.T) {
	body := []byte(`{"model": "claude-opus-4-1", "max_tokens": 64000}`)
	f, err := Scan(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(body[f.ModelSpan.Start:f.ModelSpan.End]); got != `"claude-opus-4-1"` {
		t.Errorf("model span = %q", got)
	}
	if got := string(body[f.MaxTokensSpan.Start:f.MaxTokensSpan.End]); got != `64000` {
		t.Errorf("max_tokens span = %q", got)
	}
}

func TestRewrite(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		model     string
		maxTokens int64
		budget    int64
		want      string
		inPlace   bool
	}{
		{name: "clamp in place", body: `{"max_tokens":64000,"model":"m"}`, maxTokens: 4096, want: `{"max_tokens":4096 ,"model":"m"}`, inPlace: true},
		{name: "clamp same width", body: `{"max_tokens":9999}`, maxTokens: 1000, want: `{"max_tokens":1000}`, inPlace: true},
		{name: "alias shorter", body: `{"model":"fast","max_tokens":5}`, model: "m", want: `{"model":"m"   ,"max_tokens":5}`, inPlace: true},
		{name: "alias longer then clamp", body: `{"model":"fast","max_tokens":50000}`, model: "claude-haiku-4-5", maxTokens: 100,
			want: `{"model":"claude-haiku-4-5","max_tokens":100  }`},
		{name: "grow max_tokens", body: `{"max_tokens":5,"model":"x"}`, maxTokens: 123456, model: "y", want: `{"max_tokens":123456,"model":"y"}`},
		{name: "clamp with thinking", body: `{"model":"fast","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999}}`,
			model: "claude-haiku-4-5", maxTokens: 8192, budget: 8191,
			want: `{"model":"claude-haiku-4-5","max_tokens":8192 ,"thinking":{"type":"enabled","budget_tokens":8191 }}`},
		{name: "thinking before a growing alias", body: `{"thinking":{"budget_tokens":31999,"type":"enabled"},"model":"m","max_tokens":32000}`,
			model: "claude-sonnet-4-5", budget: 15999, maxTokens: 16000,
			want: `{"thinking":{"budget_tokens":15999,"type":"enabled"},"model":"claude-sonnet-4-5","max_tokens":16000}`, inPlace: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.body)
			orig := body
			f, err := Scan(body)
			if err != nil {
				t.Fatal(err)
			}
			if c.model != "" {
				body = SetModel(body, &f, c.model)
			}
			if c.maxTokens != 0 {
				body = SetMaxTokens(body, &f, c.maxTokens)
			}
			if c.budget != 0 {
				body = SetThinkingBudget(body, &f, c.budget)
			}
			if string(body) != c.want {
				t.Fatalf("rewrite = %s, want %s", body, c.want)
			}
			if c.inPlace && &body[0] != &orig[0] {
				t.Errorf("rewrite copied the body; want in place")
			}
			again, err := Scan(body)
			if err != nil {
				t.Fatalf("rewritten body does not scan: %v", err)
			}
			if f.Model != again.Model || f.MaxTokens != again.MaxTokens || f.ModelSpan != again.ModelSpan || f.MaxTokensSpan != again.MaxTokensSpan ||
				f.Thinking != again.Thinking {
				t.Fatalf("fields after rewrite %+v, rescanned %+v", f, again)
			}
		})
	}
}

// FuzzScan checks that whatever Scan accepts, encoding/json accepts and reads the same way, and that
// rewrites keep the body valid.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-haiku-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"mod\u0065l":"x","max_tokens":1}`,
		`{"model":"\ud83d\ude00","metadata":{"user_id":"u"}}`,
		`{"a":[1,-2.5e+3,true,false,null,{}],"b":"\"\\\/\b\f\n\r\t"}`,
		"{\"model\":\"é\",\"stream\":false}",
		`{"max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		fields, err := Scan(body)
		if err != nil {
			return
		}
		if !json.Valid(orig) {
			t.Fatalf("Scan accepted invalid JSON %q", orig)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(orig, &top); err != nil {
			t.Fatalf("Scan accepted %q that encoding/json refuses as an object: %v", orig, err)
		}
		if raw, ok := top["model"]; ok != fields.HasModel {
			t.Fatalf("model presence differs for %q", orig)
		} else if ok {
			var m string
			if err := json.Unmarshal(raw, &m); err != nil || m != fields.Model {
				t.Fatalf("model = %q, encoding/json reads %q (%v)", fields.Model, m, err)
			}
		}
		if raw, ok := top["max_tokens"]; ok != fields.HasMaxTokens {
			t.Fatalf("max_tokens presence differs for %q", orig)
		} else if ok {
			var n int64
			if err := json.Unmarshal(raw, &n); err != nil || n != fields.MaxTokens {
				t.Fatalf("max_tokens = %d, encoding/json reads %d (%v)", fields.MaxTokens, n, err)
			}
		}
		if raw, ok := top["thinking"]; ok && fields.HasThinking {
			var th map[string]json.RawMessage
			if err := json.Unmarshal(raw, &th); err != nil {
				t.Fatalf("thinking of %q is no object to encoding/json: %v", orig, err)
			}
			var n int64
			if b, ok := th["budget_tokens"]; ok != fields.Thinking.HasBudget || (ok && (json.Unmarshal(b, &n) != nil || n != fields.Thinking.Budget)) {
				t.Fatalf("thinking.budget_tokens = %d (%v), encoding/json reads %s", fields.Thinking.Budget, fields.Thinking.HasBudget, b)
			}
		}
		if raw, ok := top["stream"]; ok != fields.HasStream {
			t.Fatalf("stream presence differs for %q", orig)
		} else if ok {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil || b != fields.Stream {
				t.Fatalf("stream = %v, encoding/json reads %v (%v)", fields.Stream, b, err)
			}
		}
		if fields.HasMaxTokens && fields.MaxTokens > 1 {
			out := SetMaxTokens(body, &fields, fields.MaxTokens/2)
			again, err := Scan(bytes.Clone(out))
			if err != nil || again.MaxTokens != fields.MaxTokens {
				t.Fatalf("clamped body %q: %v, max_tokens %d", out, err, again.MaxTokens)
			}
		}
	})
}

func TestMembers(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // key=value
		err       bool
	}{
		{name: "in order", doc: ` {"content":[{"text":"\"usage\": {\"output_tokens\": 0}"}], "usage" : {"output_tokens":5}} `,
			want: []string{`content=[{"text":"\"usage\": {\"output_tokens\": 0}"}]`, `usage={"output_tokens":5}`}},
		{name: "nested is not a member", doc: `{"message":{"usage":{"a":1}}}`, want: []string{`message={"usage":{"a":1}}`}},
		{name: "escaped key is decoded", doc: `{"us\u0061ge":7}`, want: []string{`usage=7`}},
		{name: "duplicates are the caller's to judge", doc: `{"usage":1,"usage":2}`, want: []string{`usage=1`, `usage=2`}},
		{name: "trailing comma", doc: `{"usage":1,}`, err: true},
		{name: "data after the object", doc: `{"a":1} {}`, err: true},
		{name: "not an object", doc: `[1]`, err: true},
		{name: "invalid UTF-8 in a value", doc: "{\"a\":\"\xff\"}", err: true},
		{name: "empty", doc: `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			err := Members([]byte(c.doc), func(k, v []byte) { got = append(got, string(k)+"="+string(v)) })
			if (err != nil) != c.err {
				t.Fatalf("Members(%q) error %v, want error %v", c.doc, err, c.err)
			}
			if !c.err && strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("Members(%q) = %q, want %q", c.doc, got, c.want)
			}
		})
	}
}

// TestEveryLengthAndOffset runs strings of every length up to 72 at every alignment, with specials at
// every position, through the marking pass and the jumps between marks: an escape or a character
// straddles the 64-byte word of marks at every offset.
func TestEveryLengthAndOffset(t *testing.T) {
	for n := 0; n <= 72; n++ {
		for pad := 0; pad < 9; pad++ {
			for _, sp := range []string{"", `\n`, `\"`, "é", `\u00e9`} {
				for at := 0; at <= n; at++ {
					s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
					doc := `{` + strings.Repeat(" ", pad) + `"model":"` + s + `"}`
					f, err := Scan([]byte(doc))
					if err != nil {
						t.Fatalf("%q: %v", doc, err)
					}
					var want struct{ Model string }
					if err := json.Unmarshal([]byte(doc), &want); err != nil {
						t.Fatalf("%q: encoding/json: %v", doc, err)
					}
					if f.Model != want.Model {
						t.Fatalf("%q: model %q, want %q", doc, f.Model, want.Model)
					}
					if _, err := Scan([]byte(doc[:len(doc)-2])); err == nil {
						t.Fatalf("%q truncated was accepted", doc)
					}
				}
			}
		}
	}
}
