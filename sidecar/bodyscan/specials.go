package bodyscan

import (
	"encoding/binary"
	"sync"
)

// The scan starts with one pass that marks every byte a string scan must stop at: '"', '\\', a control
// character or a non-ASCII byte, one bit per byte. Strings are then skipped by jumping from mark to mark
// instead of testing every byte. On amd64 with AVX2 the pass looks at 64 bytes per step; elsewhere it
// tests eight bytes at a time (special). Marking is exact and independent of context: a quote inside a
// string and one that opens a key are both marked, and the scanner decides what each one means.

// markSpecials sets bit j%64 of marks[j/64] for every special byte b[j], and clears the others. marks
// must have room for len(b) bits.
func markSpecials(b []byte, marks []uint64) {
	n := 0
	if useAVX2 {
		n = len(b) &^ 63
		if n > 0 {
			specialsAVX2(&b[0], n, &marks[0])
		}
	}
	markFrom(b, marks, n)
}

// markFrom is markSpecials without AVX2, from byte n (a multiple of 64) on.
func markFrom(b []byte, marks []uint64, n int) {
	for ; n < len(b); n += 64 {
		marks[n>>6] = specialBits(b[n:min(n+64, len(b))])
	}
}

// specialBits is markSpecials for up to 64 bytes, eight at a time.
func specialBits(b []byte) uint64 {
	var m uint64
	i := 0
	for ; i+8 <= len(b); i += 8 {
		m |= gather(special(binary.LittleEndian.Uint64(b[i:]))) << i
	}
	if i < len(b) {
		var w [8]byte
		copy(w[:], b[i:])
		m |= gather(special(binary.LittleEndian.Uint64(w[:]))) << i
		m &= 1<<len(b) - 1 // the zero padding is a control character; len(b) < 64 here
	}
	return m
}

// gather packs a word's per-byte high bits (special's result) into its low eight bits, byte j to bit j.
// With one bit per byte the partial products never overlap, so the multiplication carries nothing.
func gather(m uint64) uint64 { return (m >> 7) * 0x0102040810204080 >> 56 }

// marksPool keeps the mark bitmaps of recent bodies. A bitmap is an eighth of its body; bitmaps for
// bodies above maxPooledMarks bytes are not kept, so one huge request does not pin its bitmap.
var marksPool = sync.Pool{New: func() any { return new([]uint64) }}

const maxPooledMarks = 8 << 20

func getMarks(n int) *[]uint64 {
	p := marksPool.Get().(*[]uint64)
	words := (n + 63) >> 6
	if cap(*p) < words {
		*p = make([]uint64, words)
	}
	*p = (*p)[:words]
	return p
}

func putMarks(p *[]uint64) {
	if cap(*p)<<6 <= maxPooledMarks {
		marksPool.Put(p)
	}
}
