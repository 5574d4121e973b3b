// Package density guards the server's memory per idle session (issue #8):
// an in-process server carries sessions opened by a client subprocess, and
// the server's Go heap and stacks, measured after garbage collection, must
// stay under the budget per session (docs/density.md). The test is built
// only without the race detector, which changes allocation sizes and stack
// use; under -race this package has no tests.
package density
