package bodyscan

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2

// specialsAVX2 is markSpecials for n bytes at p, n a multiple of 64: one word of marks per 64 bytes.
//
//go:noescape
func specialsAVX2(p *byte, n int, marks *uint64)
