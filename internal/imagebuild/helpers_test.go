package imagebuild

import (
	"strings"
	"testing"
)

// errorCase checks err against a table case's wantErr ("": no error) and reports whether the case ends
// here (it expected an error, and got it).
func errorCase(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q", err, wantErr)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}
