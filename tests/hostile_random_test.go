package tests

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestRandomHostileClients: many conversations send a random mix of valid, invalid, oversized
// and undefined requests with random flags; every request gets exactly one reply with its own
// id (a frame whose header cannot be read: one reply with id 0), no handler panics, and a
// well-behaved client beside them keeps every write.
func TestRandomHostileClients(t *testing.T) {
	const conns, perConn, maxValue = 8, 300, 64 << 10
	d := testdaemon.Start(t, pipecached.Config{MaxValue: maxValue})
	ctx := pctest.Context(t)
	good := dialT(t, d.Addr().String())

	var wg sync.WaitGroup
	for g := range conns {
		wg.Go(func() { hostileConversation(t, d.Addr().String(), uint64(g), perConn, maxValue) })
	}
	var goodErrs []error
	var mu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := good.Set(ctx, fmt.Sprintf("good:%d:%d", w, i), []byte("kept")); err != nil {
					mu.Lock()
					goodErrs = append(goodErrs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Empty(t, goodErrs, "the well-behaved client's writes")
	for w := range 4 {
		for i := range 100 {
			it, err := good.Get(ctx, fmt.Sprintf("good:%d:%d", w, i))
			require.NoError(t, err)
			assert.Equal(t, "kept", string(it.Value))
		}
	}
	assert.Zero(t, d.Panics(), "handler panics")
}

// hostileConversation sends n random requests on one conversation and checks their replies.
func hostileConversation(t *testing.T, addr string, seed uint64, n, maxValue int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	r := dialRawConn(t, addr)
	r.hello("")
	ops := []string{"get", "set", "add", "replace", "cas", "delete", "incr", "touch", "mget",
		"stats", "ping", "echo", "heartbeat", "subscribe", "unsubscribe", "teleport", "push", "load", ""}
	want := map[uint64]string{}
	malformed := 0
	type got struct {
		id   uint64
		op   string
		code task.Code
	}
	replies := make(chan got, n+16)
	done := make(chan struct{})
	go func() { // read concurrently, so that the windows never fill
		defer close(done)
		for range n {
			h, _, err := r.nextWithin(pctest.Timeout)
			for err == nil && h.Op == task.OpPush && h.ID == 0 { // a push, not a reply to a "push"
				h, _, err = r.nextWithin(pctest.Timeout)
			}
			if err != nil {
				t.Errorf("conversation %d: %v", seed, err)
				return
			}
			replies <- got{h.ID, h.Op.String(), h.Code}
		}
	}()
	for i := range n {
		id := seed<<32 | uint64(i+1)
		if rng.IntN(20) == 0 { // a header nobody can read: answered with id 0
			r.sendRaw([]byte{0, 0, 0, 6, 0, 0x7f, '{', '"', 'v', '"'})
			malformed++
			continue
		}
		op := ops[rng.IntN(len(ops))]
		key := randomKey(rng)
		flags := uint32(0)
		if rng.IntN(4) == 0 {
			flags = rng.Uint32() >> rng.IntN(32)
		}
		hdr := fmt.Sprintf(`{"v":1,"op":%q,"id":%d,"key":%q,"flags":%d,"ttl":%d,"delta":%d,"ver":%d}`,
			op, id, key, flags, rng.Int64N(2_000_000)-1000, rng.Int64()-rng.Int64(), rng.Uint64N(5))
		value := make([]byte, []int{0, 10, 1000, maxValue + 1}[rng.IntN(4)])
		if op == "mget" && rng.IntN(2) == 0 {
			value = wire.AppendKeys(nil, []string{key, "x", ""})
		}
		r.sendHeader(hdr, value)
		want[id] = fmt.Sprintf("%s flags=%#x key=%dB value=%dB", op, flags, len(key), len(value))
	}
	<-done
	close(replies)
	seen := map[uint64]int{}
	idZero := 0
	for g := range replies {
		if g.id == 0 {
			idZero++
			assert.Equal(t, task.CodeBadRequest, g.code)
			continue
		}
		seen[g.id]++
		assert.NotEmpty(t, want[g.id], "a reply with an id this conversation never sent: %d (%s)", g.id, g.op)
	}
	assert.Equal(t, malformed, idZero, "one id-0 reply per unreadable header")
	for id, what := range want {
		assert.Equal(t, 1, seen[id], "request %d (%s) answered %d times", id, what, seen[id])
	}
}

func randomKey(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("k", 251+rng.IntN(300)) // over -max-key
	default:
		return fmt.Sprintf("h:%d", rng.IntN(20))
	}
}
