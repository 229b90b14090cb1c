package bodyscan

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// naiveMarks is markSpecials' definition, one byte at a time.
func naiveMarks(b []byte) []uint64 {
	m := make([]uint64, (len(b)+63)/64)
	for j, c := range b {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			m[j/64] |= 1 << (j % 64)
		}
	}
	return m
}

// randomBody mixes plain ASCII with every kind of special byte, so that every lane of a 64-byte step
// sees each of them.
func randomBody(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		switch r.IntN(4) {
		case 0:
			b[j] = byte(r.IntN(256))
		case 1:
			b[j] = []byte{'"', '\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0}[r.IntN(8)]
		default:
			b[j] = byte('a' + r.IntN(26))
		}
	}
	return b
}

func checkMarks(t *testing.T, b []byte) {
	t.Helper()
	want := naiveMarks(b)
	for name, mark := range map[string]func([]byte, []uint64){
		"markSpecials": markSpecials, // AVX2 where the CPU has it
		"generic":      func(b []byte, m []uint64) { markFrom(b, m, 0) },
	} {
		got := make([]uint64, len(want))
		for j := range got {
			got[j] = 0xdeadbeef // every word must be written, not just or-ed into
		}
		mark(b, got)
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("%s: %d-byte body, word %d = %064b, want %064b", name, len(b), j, got[j], want[j])
			}
		}
	}
}

func TestMarkSpecials(t *testing.T) {
	t.Logf("AVX2: %v", useAVX2)
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		checkMarks(t, randomBody(r, n))
	}
	// Every byte value at every offset of a 64-byte step, inside longer plain text.
	for c := range 256 {
		for off := range 130 {
			b := bytes.Repeat([]byte("x"), 130)
			b[off] = byte(c)
			checkMarks(t, b)
		}
	}
}

func FuzzMarkSpecials(f *testing.F) {
	f.Add([]byte(`{"a":"b\n\"c\u00e9 ✓"}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkMarks(t, b) })
}

// TestUTF8Plain checks the inline UTF-8 fast path against the standard library for every two- and
// three-byte sequence: it may decline a valid one (step then decodes it), never accept an invalid one
// or misjudge a length.
func TestUTF8Plain(t *testing.T) {
	accepted := 0
	for c0 := 0x80; c0 < 0x100; c0++ {
		for c1 := range 0x100 {
			for c2 := range 0x100 {
				b := []byte{byte(c0), byte(c1), byte(c2)}
				n := utf8Plain(b, 0)
				if n == 0 {
					continue
				}
				accepted++
				r, size := utf8.DecodeRune(b)
				if (r == utf8.RuneError && size == 1) || size != n {
					t.Fatalf("utf8Plain(% x) = %d, utf8.DecodeRune says %U in %d", b, n, r, size)
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("utf8Plain accepted nothing")
	}
	if utf8Plain([]byte{0xc3}, 0) != 0 || utf8Plain([]byte{0xe2, 0x9c}, 0) != 0 {
		t.Fatal("utf8Plain accepted a sequence cut off by the end of the body")
	}
}

// everyByte is a scanner whose marks stop skipString at every byte: the slowest correct scan, which
// the mark-skipping one must agree with exactly.
func everyByte(b []byte) scanner {
	m := make([]uint64, (len(b)+63)/64)
	for j := range m {
		m[j] = ^uint64(0)
	}
	if r := len(b) % 64; r != 0 {
		m[len(m)-1] = 1<<r - 1
	}
	return scanner{b: b, marks: m}
}

// FuzzSkipMarks runs Scan and the every-byte scan on the same body: same fields, same error at the
// same offset.
func FuzzSkipMarks(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude","max_tokens":10,"messages":[{"content":"a\"b\\\\c\u00e9\ud83d\ude00 é ✓ 😀"}]}`,
		`{"a":"` + string(bytes.Repeat([]byte(`x\n`), 40)) + `"}`,
		"{\"a\":\"\xc3\x28\"}",
		"{\"a\":\"\x01\"}",
		`{"a":"\q"}`,
		`{"a":"unterminated`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := Scan(body)
		ref := everyByte(body)
		want, wantErr := ref.scan()
		if !errorsMatch(gotErr, wantErr) {
			t.Fatalf("%q: Scan error %v, every-byte scan %v", body, gotErr, wantErr)
		}
		if gotErr == nil && got != want {
			t.Fatalf("%q: Scan %+v, every-byte scan %+v", body, got, want)
		}
	})
}

func errorsMatch(a, b error) bool {
	var ea, eb *Error
	if errors.As(a, &ea) != errors.As(b, &eb) {
		return false
	}
	return a == nil && b == nil || ea != nil && *ea == *eb
}
