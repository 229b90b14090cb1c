package redislib

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBoundsMatchTheLibrary: the Go bounds the sidecar keeps to are the ones the Lua functions enforce.
func TestBoundsMatchTheLibrary(t *testing.T) {
	want := map[string]int64{
		"MAX_KEYS":        MaxKeys,
		"MAX_KEY_LEN":     MaxKeyLen,
		"MAX_COUNTER_TTL": MaxCounterTTL.Milliseconds(),
		"MAX_REPLAY_TTL":  MaxReplayTTL.Milliseconds(),
		"MAX_AMOUNT":      MaxAmount,
	}
	for name, v := range want {
		m := regexp.MustCompile(`(?m)^local ` + name + ` = (\d+)`).FindStringSubmatch(Source)
		if m == nil {
			t.Errorf("claudeguard.lua defines no %s", name)
			continue
		}
		if got, _ := strconv.ParseInt(m[1], 10, 64); got != v {
			t.Errorf("claudeguard.lua: %s = %d, Go: %d", name, got, v)
		}
	}
	if MaxCounterTTL < 31*24*time.Hour+time.Minute {
		t.Errorf("MaxCounterTTL %v is shorter than a calendar month plus the grace", MaxCounterTTL)
	}
}

// TestNames: the library's first line names it, and every function it registers is in Functions.
func TestNames(t *testing.T) {
	if first := regexp.MustCompile(`^#!lua name=(\w+)\n`).FindStringSubmatch(Source); first == nil || first[1] != Library {
		t.Fatalf("claudeguard.lua does not start with #!lua name=%s", Library)
	}
	var registered []string
	for _, m := range regexp.MustCompile(`redis\.register_function\('(\w+)'`).FindAllStringSubmatch(Source, -1) {
		registered = append(registered, m[1])
	}
	if len(registered) != len(Functions) {
		t.Fatalf("claudeguard.lua registers %v, Functions = %v", registered, Functions)
	}
	for i, f := range Functions {
		if registered[i] != f {
			t.Errorf("claudeguard.lua registers %v, Functions = %v", registered, Functions)
		}
	}
}

// TestCommands: Commands lists exactly the commands the functions run.
func TestCommands(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`redis\.(?:p?call)\('(\w+)'`).FindAllStringSubmatch(Source, -1) {
		seen[strings.ToLower(m[1])] = true
	}
	got := slices.Sorted(maps.Keys(seen))
	want := slices.Sorted(slices.Values(Commands))
	if !slices.Equal(got, want) {
		t.Fatalf("the functions run %v, Commands = %v", got, want)
	}
}
