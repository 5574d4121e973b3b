//go:build !unix

package benchutil

import "time"

// CPUTime is not measured on this platform: cpu-ns/op metrics read 0.
func CPUTime() time.Duration { return 0 }
