package timer

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReadyRunsEachTargetOnce(t *testing.T) {
	var r Ready
	var calls []string
	a := &ReadyEntry{Fn: func() { calls = append(calls, "a") }}
	b := &ReadyEntry{Fn: func() { calls = append(calls, "b") }}
	r.Add(a)
	r.Add(b)
	r.Add(a) // de-duplicated
	r.Post(func() { calls = append(calls, "post") })
	assert.True(t, a.Queued())
	assert.True(t, r.Pending())
	assert.Equal(t, 3, r.Run())
	assert.Equal(t, []string{"a", "b", "post"}, calls)
	assert.False(t, a.Queued())
	assert.False(t, r.Pending())
	assert.Equal(t, 0, r.Run())
}

func TestReadyAddDuringRunWaitsForNextRun(t *testing.T) {
	var r Ready
	n := 0
	var self *ReadyEntry
	self = &ReadyEntry{Fn: func() { n++; r.Add(self) }} // re-adds itself forever
	r.Add(self)
	r.Run()
	assert.Equal(t, 1, n, "an entry added during Run must not run in the same Run")
	assert.True(t, r.Pending())
	r.Run()
	assert.Equal(t, 2, n)
}

func TestReadyAllocatesNothingInSteadyState(t *testing.T) {
	var r Ready
	e := &ReadyEntry{Fn: func() {}}
	r.Add(e)
	r.Run()
	allocs := testing.AllocsPerRun(1000, func() {
		r.Add(e)
		r.Add(e)
		r.Run()
	})
	assert.Zero(t, allocs)
}
