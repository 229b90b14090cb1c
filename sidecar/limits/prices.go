package limits

import (
	"fmt"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// compilePrice turns a price entry's decimal amounts into micro-USD, filling in what the entry leaves
// to defaults: a tier's input and output from the standard tier, cache prices from the tier's input.
func compilePrice(p policyconfig.Price) (price, error) {
	pr := price{model: p.Model}
	var err error
	if pr.standard, err = compileTier(p.TokenPrices, tierPrice{}); err != nil {
		return price{}, err
	}
	pr.batch, pr.priority = pr.standard, pr.standard
	for dst, tp := range map[*tierPrice]*policyconfig.TokenPrices{&pr.batch: p.Batch, &pr.priority: p.Priority} {
		if tp == nil {
			continue
		}
		if *dst, err = compileTier(*tp, pr.standard); err != nil {
			return price{}, err
		}
	}
	if p.WebSearchPer1000USD != "" {
		if pr.webSearchPer1000, err = microUSD(p.WebSearchPer1000USD); err != nil {
			return price{}, fmt.Errorf("webSearchPer1000USD: %w", err)
		}
	}
	return pr, nil
}

// compileTier compiles tp; input and output it leaves empty are base's. Cache prices it leaves empty
// follow the API's multipliers of the tier's input: reads 0.1x, 5-minute writes 1.25x, 1-hour 2x.
func compileTier(tp policyconfig.TokenPrices, base tierPrice) (tierPrice, error) {
	t := tierPrice{input: base.input, output: base.output}
	t.cacheRead, t.cacheWrite5m, t.cacheWrite1h = -1, -1, -1
	for _, a := range []struct {
		name string
		s    string
		dst  *int64
	}{
		{"inputUSD", tp.InputUSD, &t.input}, {"outputUSD", tp.OutputUSD, &t.output},
		{"cacheReadUSD", tp.CacheReadUSD, &t.cacheRead}, {"cacheWrite5mUSD", tp.CacheWrite5mUSD, &t.cacheWrite5m},
		{"cacheWrite1hUSD", tp.CacheWrite1hUSD, &t.cacheWrite1h},
	} {
		if a.s == "" {
			continue
		}
		v, err := microUSD(a.s)
		if err != nil {
			return tierPrice{}, fmt.Errorf("%s: %w", a.name, err)
		}
		*a.dst = v
	}
	for _, d := range []struct {
		dst      *int64
		num, den int64
	}{{&t.cacheRead, 1, 10}, {&t.cacheWrite5m, 5, 4}, {&t.cacheWrite1h, 2, 1}} {
		if *d.dst < 0 {
			*d.dst = min(t.input, maxAmount/d.num) * d.num / d.den // saturating, like every amount
		}
	}
	return t, nil
}

// maxCost is the most a request of model can cost with at most in input and out output tokens: every
// input token at the dearest input-side price of the standard and priority tiers (a cache write, which
// costs more than plain input) and every output token at the dearest output price. The Messages API
// serves no batch tier, and server-tool fees cannot be bounded from the request (docs/limits.md).
func (rs *Rules) maxCost(model string, in, out int64) int64 {
	p := rs.priceOf(model)
	if p == nil {
		return 0
	}
	var inPrice, outPrice int64
	for _, t := range []*tierPrice{&p.standard, &p.priority} {
		inPrice = max(inPrice, t.input, t.cacheRead, t.cacheWrite5m, t.cacheWrite1h)
		outPrice = max(outPrice, t.output)
	}
	return costMicroUSD([2]int64{in, inPrice}, [2]int64{out, outPrice})
}
