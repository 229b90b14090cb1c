//go:build !amd64

package bodyscan

const useAVX2 = false

func specialsAVX2(*byte, int, *uint64) { panic("bodyscan: no AVX2 on this architecture") }
