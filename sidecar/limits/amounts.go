package limits

import (
	"math/bits"

	"github.com/claude-guard/claude-guard/internal/redislib"
)

// Every hold, settled amount and counter (tokens or micro-USD) is kept in [0, maxAmount] with
// saturating arithmetic, so no client-chosen value (a max_tokens near 2^63, a huge body) and no usage
// report can wrap a reservation negative and turn a limit off: at worst it saturates, and a hold larger
// than the limit is refused as one that can never fit. maxAmount is the bound the Redis functions
// enforce on their arguments, so both backends see the same values.
const maxAmount = redislib.MaxAmount

// clampAmount bounds v to [0, maxAmount].
func clampAmount(v int64) int64 { return max(0, min(v, maxAmount)) }

// addAmounts is the saturating sum of amounts, each first clamped: a partial sum and a term are each at
// most maxAmount (2^62), so their sum cannot overflow before it is compared.
func addAmounts(vs ...int64) int64 {
	var sum int64
	for _, v := range vs {
		v = clampAmount(v)
		if sum > maxAmount-v {
			return maxAmount
		}
		sum += v
	}
	return sum
}

// costMicroUSD is Σ tokens×price / 1e6 (prices are micro-USD per million tokens), computed in 128 bits so
// that it is exact where it fits and saturates at maxAmount where it does not.
func costMicroUSD(terms ...[2]int64) int64 {
	var hi, lo uint64
	for _, t := range terms {
		h, l := bits.Mul64(uint64(clampAmount(t[0])), uint64(clampAmount(t[1])))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi += h + carry
	}
	if hi >= 1_000_000 {
		return maxAmount // the quotient would not fit 64 bits
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	if q > uint64(maxAmount) {
		return maxAmount
	}
	return int64(q)
}
