#include "textflag.h"

// func specialsAVX2(p *byte, n int, marks *uint64)
//
// For each 64 bytes: compare both halves with '"' and '\\', and (signed) with 0x1f, which is greater
// only for 0x20..0x7f; a byte is special when it equals one of the two or is outside that range. The
// byte masks become bit masks with VPMOVMSKB, 32 bits per half.
TEXT ·specialsAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ marks+16(FP), DI

	MOVQ         $0x22, AX
	MOVQ         AX, X1
	VPBROADCASTB X1, Y1    // '"'
	MOVQ         $0x5c, AX
	MOVQ         AX, X2
	VPBROADCASTB X2, Y2    // '\\'
	MOVQ         $0x1f, AX
	MOVQ         AX, X3
	VPBROADCASTB X3, Y3    // the highest control character

loop:
	CMPQ CX, $64
	JB   done

	VMOVDQU  (SI), Y4
	VPCMPEQB Y1, Y4, Y6
	VPCMPEQB Y2, Y4, Y7
	VPOR     Y6, Y7, Y6
	VPCMPGTB Y3, Y4, Y7    // Y4 > 0x1f, signed: printable ASCII
	VPMOVMSKB Y6, AX
	VPMOVMSKB Y7, BX
	NOTL     BX
	ORL      BX, AX        // 32 bits, zero-extended

	VMOVDQU  32(SI), Y5
	VPCMPEQB Y1, Y5, Y6
	VPCMPEQB Y2, Y5, Y7
	VPOR     Y6, Y7, Y6
	VPCMPGTB Y3, Y5, Y7
	VPMOVMSKB Y6, DX
	VPMOVMSKB Y7, BX
	NOTL     BX
	ORL      BX, DX
	SHLQ     $32, DX
	ORQ      DX, AX

	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	SUBQ $64, CX
	JMP  loop

done:
	VZEROUPPER
	RET
