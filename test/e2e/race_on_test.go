//go:build race

package e2e

// raceEnabled: the suite was built with -race, so TestMain builds the
// server with -race too (a data race then makes it exit non-zero, which
// Stop reports).
const raceEnabled = true
