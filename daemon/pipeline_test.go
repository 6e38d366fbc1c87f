package daemon

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestThreadsDefaultFromAffinity: without -threads, the mapping follows the CPUs the process may
// run on (sched_getaffinity), so taskset and a container's cpuset choose it; -threads overrides
// it. The test narrows its own thread's affinity to one CPU (sched_getaffinity(0) reads the
// calling thread's), on a goroutine locked to that thread and never unlocked, so the thread
// ends with the goroutine and no other goroutine runs with the narrowed set.
func TestThreadsDefaultFromAffinity(t *testing.T) {
	var all unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &all))
	assert.Equal(t, MappingFor(all.Count()), mustChoose(t, &Config{}), "default: every CPU the process may use")
	assert.Equal(t, MappingFor(4), mustChoose(t, &Config{Threads: 4}), "-threads overrides the affinity")

	type result struct {
		m   Mapping
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the narrowed thread exits with this goroutine
		var one unix.CPUSet
		for c := range 1024 {
			if all.IsSet(c) {
				one.Set(c)
				break
			}
		}
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			done <- result{err: err}
			return
		}
		m, err := chooseMapping(&Config{})
		done <- result{m, err}
	}()
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, Mapping{{RoleIncoming, RoleSessions, RoleCache, RoleOutgoing}}, r.m,
		"a process allowed one CPU runs every stage on one loop")
}

func mustChoose(t *testing.T, cfg *Config) Mapping {
	m, err := chooseMapping(cfg)
	require.NoError(t, err)
	return m
}

// TestREADMEThreadsTableIsTheMapping: README's "Threads" table says, for each -threads, the loops
// MappingFor makes, each named by the stages it hosts, as /metrics labels them.
func TestREADMEThreadsTableIsTheMapping(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### Threads\n")
	require.True(t, ok, "README.md has no Threads section")
	row := regexp.MustCompile("(?m)^\\| ([0-9][^|]*) \\| ([^|]+) \\|")
	name := regexp.MustCompile("`([a-z+]+)`")
	checked := map[int]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var loops []string
		for _, n := range name.FindAllStringSubmatch(m[2], -1) {
			loops = append(loops, n[1])
		}
		for _, threads := range threadsOfRow(t, m[1]) {
			assert.Equal(t, MappingFor(threads).String(), strings.Join(loops, ","), "README's row for -threads %d", threads)
			checked[threads] = true
		}
	}
	for _, threads := range []int{1, 2, 3, 4, 16} {
		assert.True(t, checked[threads], "README's Threads table has no row for -threads %d", threads)
	}
}

// threadsOfRow reads a row's first cell: "1", "2, 3", or "4 or more" (4, 8 and 16 stand for it).
func threadsOfRow(t *testing.T, cell string) []int {
	if first, ok := strings.CutSuffix(strings.TrimSpace(cell), " or more"); ok {
		n, err := strconv.Atoi(first)
		require.NoError(t, err, cell)
		return []int{n, 2 * n, 4 * n}
	}
	var ns []int
	for _, f := range strings.Split(cell, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(t, err, cell)
		ns = append(ns, n)
	}
	return ns
}
