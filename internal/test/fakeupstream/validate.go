package fakeupstream

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The Messages API's own checks on the fields a proxy rewrites, so a test cannot pass on a request the
// real API would refuse: max_tokens within the model's output limit, and extended thinking's budget at
// least MinThinkingBudget and below max_tokens.

// MinThinkingBudget is the smallest thinking.budget_tokens the API accepts.
const MinThinkingBudget = 1024

// MaxOutputTokens is the output limit of the models the fake knows; others are not limited.
var MaxOutputTokens = map[string]int64{
	"claude-haiku-4-5":  64000,
	"claude-sonnet-4-5": 64000,
	"claude-opus-4-5":   64000,
	"claude-opus-4-1":   32000,
}

// request is the part of a Messages request the fake reads.
type request struct {
	Model     string          `json:"model"`
	MaxTokens int64           `json:"max_tokens"`
	Stream    bool            `json:"stream"`
	Thinking  json.RawMessage `json:"thinking"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// thinking is the "thinking" object.
type thinking struct {
	Type         string `json:"type"`
	BudgetTokens *int64 `json:"budget_tokens"`
}

// validate returns the API's error message for a request it would refuse, "" when it is valid.
func (r *request) validate() string {
	switch {
	case r.Model == "":
		return "model: Field required"
	case r.MaxTokens < 1:
		return "max_tokens: Field required"
	}
	if limit, ok := MaxOutputTokens[r.Model]; ok && r.MaxTokens > limit {
		return fmt.Sprintf("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", r.MaxTokens, limit, r.Model)
	}
	return r.validateThinking()
}

func (r *request) validateThinking() string {
	if len(r.Thinking) == 0 || string(r.Thinking) == "null" {
		return ""
	}
	var t thinking
	if err := json.Unmarshal(r.Thinking, &t); err != nil {
		return "thinking: Input should be an object"
	}
	switch t.Type {
	case "disabled", "adaptive":
		return ""
	case "enabled":
	default:
		return fmt.Sprintf("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive' (got %q)", strings.ToValidUTF8(t.Type, "?"))
	}
	switch {
	case t.BudgetTokens == nil:
		return "thinking.enabled.budget_tokens: Field required"
	case *t.BudgetTokens < MinThinkingBudget:
		return fmt.Sprintf("thinking.enabled.budget_tokens: Input should be greater than or equal to %d", MinThinkingBudget)
	case *t.BudgetTokens >= r.MaxTokens:
		return "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
	}
	return ""
}

// thinkingOn reports whether the request asked for extended thinking (enabled or adaptive).
func (r *request) thinkingOn() bool {
	var t thinking
	return len(r.Thinking) > 0 && json.Unmarshal(r.Thinking, &t) == nil && (t.Type == "enabled" || t.Type == "adaptive")
}
