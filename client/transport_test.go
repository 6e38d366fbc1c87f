package client

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// helloOnly answers the hello (as a server without sessions) and nothing else, not even
// heartbeats: it stays silent, while its KCP still acknowledges every request.
func helloOnly(h *wire.Header, _ []byte) (*wire.Header, []byte) {
	if h.Op == task.OpHello {
		return &wire.Header{Code: task.CodeUnknownOp}, nil
	}
	return nil, nil
}

// TestSilenceIsDataNotACKs: WithSilenceTimeout counts what the server sends, not the KCP
// acknowledgments of what the client sent: a server that acknowledges every request (and
// heartbeat) but answers none is silent, and a call fails with ErrTimeout after the silence
// timeout, long before its context ends.
func TestSilenceIsDataNotACKs(t *testing.T) {
	addr := startFake(t, helloOnly)
	c, err := Dial(addr, WithSilenceTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := pctest.Context(t)
	_, err = c.Get(ctx, "k")
	if !errors.Is(err, ErrTimeout) || ctx.Err() != nil {
		t.Fatalf("Get = %v (context: %v), want the silence timeout's ErrTimeout", err, ctx.Err())
	}
	if !bytes.Contains([]byte(err.Error()), []byte("server silent")) {
		t.Errorf("%v: want it to say the server is silent", err)
	}
}

// TestClientsWithOneKeyShareOneBlockCrypt: every Client with the same key gets the same
// BlockCrypt, so that the kcpnet engine puts their conversations on the same sockets; another
// key gets another.
func TestClientsWithOneKeyShareOneBlockCrypt(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	a := newClient("127.0.0.1:1", []Option{WithCryptKey(key)})
	b := newClient("127.0.0.1:2", []Option{WithCryptKey(bytes.Clone(key))})
	other := newClient("127.0.0.1:3", []Option{WithCryptKey(bytes.Repeat([]byte{8}, 16))})
	if a.opts.crypt == nil || a.opts.cryptErr != nil {
		t.Fatalf("crypt %v, err %v", a.opts.crypt, a.opts.cryptErr)
	}
	if a.opts.crypt != b.opts.crypt {
		t.Error("two clients with the same key have different BlockCrypts")
	}
	if a.opts.crypt == other.opts.crypt {
		t.Error("two keys share a BlockCrypt")
	}
	if legacy := newClient("127.0.0.1:5", []Option{WithLegacyCryptKey(key)}); legacy.opts.crypt == a.opts.crypt {
		t.Error("the legacy framing shares a BlockCrypt with AES-GCM")
	}

	if bad := newClient("127.0.0.1:4", []Option{WithCryptKey([]byte("short"))}); !errors.Is(bad.opts.cryptErr, ErrBadRequest) {
		t.Errorf("a 5-byte key: %v, want ErrBadRequest", bad.opts.cryptErr)
	}
}
