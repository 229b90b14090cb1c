package explain

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const exposition = `# TYPE claude_guard_requests_total counter
claude_guard_requests_total{decision="allow",endpoint="/v1/messages",model="claude-haiku-4-5",status="200"} 7
claude_guard_requests_total{decision="deny",endpoint="/v1/messages",model="other",status="403"} 2
claude_guard_requests_total{decision="deny",endpoint="/v1/messages",model="claude-haiku-4-5",status="429"} 3
# TYPE gen_ai_client_operation_duration_seconds histogram
gen_ai_client_operation_duration_seconds_bucket{claude_guard_decision="allow",le="+Inf"} 7
gen_ai_client_operation_duration_seconds_sum{claude_guard_decision="allow"} 1
gen_ai_client_operation_duration_seconds_count{claude_guard_decision="allow"} 7
gen_ai_client_operation_duration_seconds_bucket{claude_guard_decision="deny",claude_guard_rule="models.allow",le="+Inf"} 2
gen_ai_client_operation_duration_seconds_sum{claude_guard_decision="deny",claude_guard_rule="models.allow"} 0.001
gen_ai_client_operation_duration_seconds_count{claude_guard_decision="deny",claude_guard_rule="models.allow"} 2
gen_ai_client_operation_duration_seconds_bucket{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="true",le="+Inf"} 1
gen_ai_client_operation_duration_seconds_sum{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="true"} 0.001
gen_ai_client_operation_duration_seconds_count{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="true"} 1
gen_ai_client_operation_duration_seconds_bucket{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="false",le="+Inf"} 2
gen_ai_client_operation_duration_seconds_sum{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="false"} 0.001
gen_ai_client_operation_duration_seconds_count{claude_guard_decision="deny",claude_guard_rule="limits/policy/rpm",claude_guard_stream="false"} 2
`

func TestReadMetricsSumsDenialsByRule(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	denials, requests, err := readMetrics(context.Background(), URL{URL: srv.URL, Token: "tok"}, &corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Denial{{"limits/policy/rpm", "deny", 3}, {"models.allow", "deny", 2}}
	if len(denials) != len(want) {
		t.Fatalf("denials = %v, want %v", denials, want)
	}
	for i := range want {
		if denials[i] != want[i] {
			t.Errorf("denial %d = %v, want %v (streams summed in, most frequent first)", i, denials[i], want[i])
		}
	}
	if requests["allow"] != 7 || requests["deny"] != 5 {
		t.Errorf("requests by decision = %v, want allow 7 and deny 5", requests)
	}
}

func TestReadMetricsSaysWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		name, body, token, want string
	}{
		{"no token", exposition, "", "needs the metrics token"},
		{"not the text format", "{\"json\": true}\n", "tok", "not in the Prometheus text format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok" {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, _, err := readMetrics(context.Background(), URL{URL: srv.URL, Token: tc.token}, &corev1.Pod{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
