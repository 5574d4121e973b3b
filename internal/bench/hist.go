package bench

import (
	"math/bits"
	"time"
)

// histSub is the number of linear sub-buckets per power of two: values are
// kept to within 1/32 (about 3 %), enough for latency percentiles, in a
// fixed-size array that merges across workers by addition.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = 64 * histSub
)

// Hist is a log-linear histogram of durations in microseconds. Its zero
// value is empty; it is not safe for concurrent use.
type Hist struct {
	// Counts is sparse on the wire (bucket index → count): most of the
	// 2048 buckets of a run are empty.
	Counts map[int]uint64 `json:"counts,omitempty"`
	N      uint64         `json:"n"`
	MaxUS  uint64         `json:"max_us"`
}

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1
	return (shift+1)*histSub + int(us>>uint(shift)) - histSub
}

// histLow is the smallest value of bucket i.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return uint64(i%histSub+histSub) << uint(shift)
}

// Add records one duration (negative ones, from clock steps, count as 0).
func (h *Hist) Add(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	if h.Counts == nil {
		h.Counts = map[int]uint64{}
	}
	h.Counts[histIndex(us)]++
	h.N++
	h.MaxUS = max(h.MaxUS, us)
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil {
		return
	}
	if h.Counts == nil {
		h.Counts = map[int]uint64{}
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.MaxUS = max(h.MaxUS, o.MaxUS)
}

// Quantile returns the value below which a fraction q of the samples lie,
// as the middle of its bucket.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(q * float64(h.N-1))
	var seen uint64
	for i := range histBuckets {
		c := h.Counts[i]
		if c == 0 {
			continue
		}
		seen += c
		if seen > rank {
			lo, hi := histLow(i), histLow(i+1)
			mid := min((lo+hi)/2, h.MaxUS)
			return time.Duration(mid) * time.Microsecond
		}
	}
	return time.Duration(h.MaxUS) * time.Microsecond
}

// Percentiles are a distribution's summary in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   uint64  `json:"n"`
}

// Summary returns p50/p90/p99/max.
func (h *Hist) Summary() Percentiles {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Percentiles{
		P50: ms(h.Quantile(0.50)),
		P90: ms(h.Quantile(0.90)),
		P99: ms(h.Quantile(0.99)),
		Max: float64(h.MaxUS) / 1000,
		N:   h.N,
	}
}
