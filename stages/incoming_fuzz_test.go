package stages

import (
	"net/netip"
	"testing"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// FuzzPendingConversation sends arbitrary bytes as the stream of a conversation that has not
// said hello, through the real network stage (its loop not running: the fuzzer drives it).
// Whatever they are, the server sends back at most three times what it received, keeps at most
// a pending conversation's frame, answers at most maxStrikes refused requests, and never panics.
func FuzzPendingConversation(f *testing.F) {
	hello, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpHello, ID: 1}, []byte(`{"pad":"`+string(make([]byte, 200))+`"}`))
	get, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpGet, ID: 2, Key: []byte("k")}, nil)
	f.Add(hello)
	f.Add(append(get, get...))
	f.Add([]byte{0, 0, 0, 4, 0, 0x40, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	sessions := newTestQueue(f, "sessionmgr", 1<<16) // hellos end here, unanswered
	startLoop(f, loop.Config{Name: "sessionmgr"}, sessions, task.Put)
	// No rate limits: every input must reach the pending conversation's code.
	in, err := NewIncoming(IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0",
		PendingRate: 1 << 30, SourceRate: 1 << 30},
		Routes: map[task.Op]*loop.Queue{task.OpHello: sessions, task.OpGet: sessions}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { in.loop.Stop(pctest.Context(f)) })
	from := netip.MustParseAddrPort("127.0.0.1:9") // replies go nowhere
	conv := uint32(0)
	f.Fuzz(func(t *testing.T, stream []byte) {
		conv++
		before := in.srv.Stats()
		var sent uint64
		k := kcp.NewKCP(conv, func(b []byte, n int) {
			sent += uint64(n)
			in.srv.Inject(append([]byte(nil), b[:n]...), from)
		})
		k.NoDelay(1, 10, 2, 1)
		k.WndSize(1024, 1024)
		for len(stream) > 0 { // segments of at most one MSS: the stream mode a client uses
			n := min(len(stream), 1376)
			k.Send(stream[:n])
			stream = stream[n:]
		}
		k.Update() // the first Update flushes what was sent
		in.loop.Ready().Run()
		after := in.srv.Stats()
		if out := after.BytesOut - before.BytesOut; out > transport.Amplification*sent {
			t.Fatalf("sent %d bytes to a pending conversation that sent %d", out, sent)
		}
		if after.Pending > 1 {
			t.Fatalf("%d pending conversations", after.Pending)
		}
		in.srv.CloseAll()
		in.loop.Ready().Run()
	})
}
