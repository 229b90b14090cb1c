package fakeupstream

import (
	"net/http"
	"strconv"
	"strings"
)

// Model is one entry of the fake's model catalogue.
type Model struct {
	ID, DisplayName, CreatedAt string
}

// Alias is the id the API also accepts for m: its id without the date suffix.
func (m Model) Alias() string {
	if i := strings.LastIndexByte(m.ID, '-'); i > 0 && len(m.ID)-i-1 == 8 {
		return m.ID[:i]
	}
	return m.ID
}

// Catalogue is what GET /v1/models lists, newest first, as the API does: dated ids, whose undated
// aliases GET /v1/models/{alias} and Messages also accept.
var Catalogue = []Model{
	{"claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z"},
	{"claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"},
	{"claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"},
	{"claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"},
	{"claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"},
}

func (m Model) object() map[string]any {
	return map[string]any{"type": "model", "id": m.ID, "display_name": m.DisplayName, "created_at": m.CreatedAt}
}

// listModels answers GET /v1/models with the API's cursor pagination: limit (1 to 1000, default 20),
// after_id or before_id, and has_more, first_id and last_id.
func listModels(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be between 1 and 1000")
			return
		}
		limit = n
	}
	start, end := 0, len(Catalogue)
	if after := q.Get("after_id"); after != "" {
		start = indexOf(after) + 1
	}
	if before := q.Get("before_id"); before != "" {
		end = max(indexOf(before), 0)
		start = max(end-limit, 0)
	}
	page := Catalogue[start:min(start+limit, end)]
	data := make([]any, len(page))
	for i, m := range page {
		data[i] = m.object()
	}
	resp := map[string]any{"data": data, "has_more": start+len(page) < end, "first_id": nil, "last_id": nil}
	if len(page) > 0 {
		resp["first_id"], resp["last_id"] = page[0].ID, page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func indexOf(id string) int {
	for i, m := range Catalogue {
		if m.ID == id {
			return i
		}
	}
	return len(Catalogue)
}

// getModel answers GET /v1/models/{id}: a dated id or its alias gets the dated entry, anything else
// the API's 404. Ids the catalogue does not know but that name a Claude model are answered too (a
// model of a test's own), so tests are not tied to this list.
func getModel(w http.ResponseWriter, id string) {
	for _, m := range Catalogue {
		if id == m.ID || id == m.Alias() {
			writeJSON(w, http.StatusOK, m.object())
			return
		}
	}
	if !strings.HasPrefix(id, "claude-") {
		writeError(w, http.StatusNotFound, "not_found_error", "model: "+id)
		return
	}
	writeJSON(w, http.StatusOK, Model{ID: id, DisplayName: id, CreatedAt: "2025-09-29T00:00:00Z"}.object())
}
