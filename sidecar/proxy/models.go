package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/decide"
)

// GET /v1/models lists only what the caller may use: model pickers (Claude Code's, an SDK's
// models.list()) must not offer a model the policy will refuse. The sidecar asks the upstream for the
// whole list (one page of up to 1,000), keeps the models the policy, the tenant's rules rendered into
// it and the caller's end-user tier allow, adds the policy's aliases, and pages the result itself with
// the API's cursor parameters, so has_more, first_id and last_id stay true to what the caller sees.
//
// A dated model the policy does not allow under its own id, but whose undated alias it does allow
// ("claude-sonnet-4-5" for "claude-sonnet-4-5-20250929"), is listed under the alias: that is the id
// the caller may send.

// listParams is a models list request's paging: the API's limit (1 to 1000, default 20) and one of
// after_id and before_id.
type listParams struct {
	limit           int
	afterID, before string
}

// maxListLimit is the API's largest page; the sidecar asks for one page of it.
const maxListLimit = 1000

func parseListParams(q url.Values) (listParams, error) {
	p := listParams{limit: 20, afterID: q.Get("after_id"), before: q.Get("before_id")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return p, fmt.Errorf("limit must be an integer from 1 to %d", maxListLimit)
		}
		p.limit = n
	}
	if p.afterID != "" && p.before != "" {
		return p, errors.New("send after_id or before_id, not both")
	}
	return p, nil
}

// isModelsList reports whether r lists models.
func isModelsList(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == policyconfig.PathModels
}

// WithModelsList checks a models list request's paging before it is forwarded.
func WithModelsList(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Shadow mode changes no request and no response: the list passes as the upstream sent it.
		if ex := FromContext(r.Context()); isModelsList(r) && !ex.Policy.Config.ShadowMode {
			p, err := parseListParams(r.URL.Query())
			if err != nil {
				ex.refuse(w, &decide.Denial{Rule: RuleModelsList, Status: http.StatusBadRequest, Type: decide.TypeInvalidRequest,
					Message: "claude-guard: models list: " + err.Error() + " (rule models.list)"}, false, 0)
				return
			}
			ex.modelsList = &p
		}
		next.ServeHTTP(w, r)
	})
}

// RuleModelsList names refusals of a models list request's paging.
const RuleModelsList = "models.list"

// errModelsList marks a model list the sidecar could not filter: the caller gets a 502, never the
// unfiltered list.
var errModelsList = errors.New("the upstream's model list could not be read")

// modelsListQuery is the upstream query of a models list: the whole list in one page.
var modelsListQuery = "limit=" + strconv.Itoa(maxListLimit)

// modelEntry is one model object of a list, kept whole so fields the sidecar does not know pass through.
type modelEntry struct {
	id  string
	obj map[string]any
}

// filterModelsList rewrites an upstream models list response into the caller's page.
func filterModelsList(resp *http.Response, ex *Exchange) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONUsageBody+1))
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("%w: reading it: %w", errModelsList, err)
	case len(raw) > maxJSONUsageBody:
		return fmt.Errorf("%w: it is larger than %d bytes", errModelsList, maxJSONUsageBody)
	}
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("%w: %w", errModelsList, err)
	}
	entries := usableModels(list.Data, ex.Policy, ex.decisionUser())
	out, err := json.Marshal(page(entries, *ex.modelsList))
	if err != nil {
		return fmt.Errorf("%w: encoding it: %w", errModelsList, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// usableModels keeps the upstream's models the caller may use, in the upstream's order, each under
// the id the policy allows, then the policy's aliases whose target is usable, sorted by name.
func usableModels(data []map[string]any, p *decide.Policy, u *decide.User) []modelEntry {
	var out []modelEntry
	byID := map[string]map[string]any{}
	for _, obj := range data {
		id, _ := obj["id"].(string)
		if id == "" {
			continue
		}
		alias := undated(id)
		byID[id], byID[alias] = obj, obj
		switch {
		case p.Usable(id, u):
			out = append(out, modelEntry{id: id, obj: obj})
		case alias != id && p.Usable(alias, u):
			out = append(out, modelEntry{id: alias, obj: withID(obj, alias)})
		}
	}
	aliases := make([]string, 0, len(p.Aliases()))
	for a := range p.Aliases() {
		aliases = append(aliases, a)
	}
	slices.Sort(aliases)
	for _, a := range aliases {
		target, ok := byID[p.Aliases()[a]]
		if ok && p.Usable(a, u) && !slices.ContainsFunc(out, func(e modelEntry) bool { return e.id == a }) {
			out = append(out, modelEntry{id: a, obj: withID(target, a)})
		}
	}
	return out
}

// undated is a model id without its date suffix ("claude-haiku-4-5-20251001" → "claude-haiku-4-5").
func undated(id string) string {
	i := strings.LastIndexByte(id, '-')
	if i < 0 || len(id)-i-1 != 8 || strings.Trim(id[i+1:], "0123456789") != "" {
		return id
	}
	return id[:i]
}

// withID is a copy of the model object obj listed under id.
func withID(obj map[string]any, id string) map[string]any {
	c := maps.Clone(obj)
	c["id"] = id
	return c
}

// page cuts one page out of entries with the API's cursor semantics.
func page(entries []modelEntry, p listParams) map[string]any {
	start, end := 0, len(entries)
	index := func(id string) int {
		for i, e := range entries {
			if e.id == id {
				return i
			}
		}
		return len(entries)
	}
	switch {
	case p.afterID != "":
		start = min(index(p.afterID)+1, len(entries))
	case p.before != "":
		end = index(p.before)
		start = max(end-p.limit, 0)
	}
	pg := entries[start:min(start+p.limit, end)]
	data := make([]map[string]any, len(pg))
	for i, e := range pg {
		data[i] = e.obj
	}
	out := map[string]any{"data": data, "has_more": start+len(pg) < end, "first_id": nil, "last_id": nil}
	if p.before != "" {
		out["has_more"] = start > 0
	}
	if len(pg) > 0 {
		out["first_id"], out["last_id"] = pg[0].id, pg[len(pg)-1].id
	}
	return out
}
