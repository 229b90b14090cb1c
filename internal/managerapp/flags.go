package managerapp

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// jsonFlag is a flag whose value is a JSON document decoded strictly into *v, so a Helm value such as
// the sidecar's resources passes through as one argument (`toJson` in the chart) without a flag per field.
type jsonFlag[T any] struct{ v *T }

func (f jsonFlag[T]) String() string {
	if f.v == nil {
		return ""
	}
	b, err := json.Marshal(f.v)
	if err != nil {
		return ""
	}
	return string(b)
}

func (f jsonFlag[T]) Set(s string) error {
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	*f.v = v
	return nil
}

// mapFlag is a flag of key=value pairs separated by commas. Setting it replaces the whole map.
type mapFlag struct{ m *map[string]string }

func (f mapFlag) String() string {
	if f.m == nil {
		return ""
	}
	pairs := make([]string, 0, len(*f.m))
	for _, k := range slices.Sorted(maps.Keys(*f.m)) {
		pairs = append(pairs, k+"="+(*f.m)[k])
	}
	return strings.Join(pairs, ",")
}

func (f mapFlag) Set(s string) error {
	m := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", pair)
		}
		if _, dup := m[k]; dup {
			return fmt.Errorf("%q is given twice", k)
		}
		m[k] = v
	}
	*f.m = m
	return nil
}

// int32Flag is an int32 flag (the Kubernetes type of ports).
type int32Flag struct{ v *int32 }

func (f int32Flag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.Itoa(int(*f.v))
}

func (f int32Flag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a 32-bit integer", s)
	}
	*f.v = int32(n)
	return nil
}

// listFlag is a flag of values separated by commas. Setting it replaces the whole list.
type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	var l []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l = append(l, v)
		}
	}
	*f.l = l
	return nil
}
