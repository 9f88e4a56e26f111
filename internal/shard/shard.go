// Package shard routes shops to MySQL shards: shop i lives on shard i % N.
package shard

// For returns the shard that owns shopID among n shards.
func For(shopID int64, n int) int {
	s := shopID % int64(n)
	if s < 0 {
		s += int64(n)
	}
	return int(s)
}

// All returns the shard numbers 0..n-1.
func All(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
