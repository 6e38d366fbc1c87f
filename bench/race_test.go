//go:build race

package bench

// raceEnabled: the tests run under the race detector (slower; they size themselves down).
const raceEnabled = true
