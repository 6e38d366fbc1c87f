package loop

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

const benchQueueSize = 4096

// BenchmarkHandoff moves b.N tasks from P producers to one consumer: through a Queue into a
// stage loop (which sleeps in epoll when the ring is empty), and through a buffered channel into
// a goroutine, in the same run.
//
// "pool" takes each task from the task pool in the producer and returns it in the consumer, so
// every task also crosses threads through sync.Pool; "prealloc" hands over preallocated tasks and
// measures the hand-off alone. In pipecached a task is taken and returned by the same stage
// (Incoming), so "prealloc" is the hand-off the pipeline pays per hop.
func BenchmarkHandoff(b *testing.B) {
	for _, pooled := range []bool{false, true} {
		mode := "prealloc"
		if pooled {
			mode = "pool"
		}
		for _, producers := range []int{1, 4} {
			b.Run(fmt.Sprintf("queue/%s/producers=%d", mode, producers), func(b *testing.B) {
				benchQueueHandoff(b, producers, pooled)
			})
			b.Run(fmt.Sprintf("chan/%s/producers=%d", mode, producers), func(b *testing.B) {
				benchChanHandoff(b, producers, pooled)
			})
		}
	}
}

// benchTasks hands out tasks for the producers: from the pool, or from a preallocated ring
// larger than any queue so that no task is in flight twice.
type benchTasks struct {
	pooled bool
	ring   []task.Task
	next   atomic.Uint64
}

func newBenchTasks(pooled bool) *benchTasks {
	bt := &benchTasks{pooled: pooled}
	if !pooled {
		bt.ring = make([]task.Task, 4*benchQueueSize)
	}
	return bt
}

func (bt *benchTasks) get() *task.Task {
	if bt.pooled {
		return task.Get()
	}
	return &bt.ring[bt.next.Add(1)%uint64(len(bt.ring))]
}

func (bt *benchTasks) put(t *task.Task) {
	if bt.pooled {
		task.Put(t)
	}
}

func benchQueueHandoff(b *testing.B, producers int, pooled bool) {
	bt := newBenchTasks(pooled)
	q := newTestQueue(b, "bench", benchQueueSize)
	handled, all := 0, make(chan struct{}) // handled: loop goroutine only
	l := startLoop(b, Config{Name: "bench", Logger: discard}, q, func(t *task.Task) {
		bt.put(t)
		if handled++; handled == b.N {
			close(all)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	produce(b.N, producers, func() {
		t := bt.get()
		for q.Push(t) != nil {
			runtime.Gosched() // back-pressure: a full ring rejects, the producer yields
		}
	})
	<-all
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(st.Queues[1].Wakeups)/float64(b.N), "wakeups/op")
	b.ReportMetric(float64(st.Queues[1].Rejected)/float64(b.N), "full/op")
	b.ReportMetric(float64(b.N)/float64(st.Iterations), "tasks/iteration")
}

func benchChanHandoff(b *testing.B, producers int, pooled bool) {
	bt := newBenchTasks(pooled)
	ch := make(chan *task.Task, benchQueueSize)
	done := make(chan struct{})
	go func() {
		for t := range ch {
			bt.put(t)
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	produce(b.N, producers, func() { ch <- bt.get() })
	close(ch)
	<-done
}

// produce runs n calls of push spread over p goroutines.
func produce(n, p int, push func()) {
	var wg sync.WaitGroup
	for i := range p {
		share := n / p
		if i < n%p {
			share++
		}
		wg.Go(func() {
			for range share {
				push()
			}
		})
	}
	wg.Wait()
}

// BenchmarkWakeup measures how long a sleeping consumer takes to see a task: a stage loop asleep
// in epoll_wait woken through the queue's eventfd, against a goroutine parked on a channel
// receive. Each round lets the consumer settle into sleep first (50 µs), then stamps and sends.
// ns/op includes that settling; the wake-up itself is reported as p50/p99 ns.
func BenchmarkWakeup(b *testing.B) {
	const settle = 50 * time.Microsecond
	b.Run("queue+eventfd+epoll", func(b *testing.B) {
		q := newTestQueue(b, "wake", 64)
		lat := make([]int64, 0, b.N)
		var handled atomic.Int64
		startLoop(b, Config{Name: "wake", Logger: discard}, q, func(t *task.Task) {
			lat = append(lat, timer.Now()-t.TTLms)
			task.Put(t)
			handled.Add(1)
		})
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			for q.sleeping.Load() == 0 {
			}
			spinFor(settle)
			t := task.Get()
			t.TTLms = timer.Now() // the send stamp rides in a spare field
			if err := q.Push(t); err != nil {
				b.Fatal(err)
			}
			for handled.Load() != int64(i+1) {
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
	b.Run("chan+goroutine", func(b *testing.B) {
		ch := make(chan *task.Task)
		lat := make([]int64, 0, b.N)
		var handled atomic.Int64
		go func() {
			for t := range ch {
				lat = append(lat, timer.Now()-t.TTLms)
				task.Put(t)
				handled.Add(1)
			}
		}()
		defer close(ch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			spinFor(settle)
			t := task.Get()
			t.TTLms = timer.Now()
			ch <- t
			for handled.Load() != int64(i+1) {
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
}

func spinFor(d time.Duration) {
	for end := timer.Now() + int64(d); timer.Now() < end; {
	}
}

func reportLatency(b *testing.B, lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}

// discard keeps benchmark output free of the loops' debug lines.
var discard = slog.New(slog.DiscardHandler)
