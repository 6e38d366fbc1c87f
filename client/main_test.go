package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/pipecache/pipecache/daemon"
)

// addr and addr2 are two pipecached daemons run in this process for the examples (and the
// tests that need a real server), each on its own embedded store on 127.0.0.1:0.
var addr, addr2 string

func TestMain(m *testing.M) {
	code, err := runWithDaemons(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithDaemons(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "pipecache-client-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var daemons []*daemon.Daemon
	defer func() {
		for _, d := range daemons {
			d.Stop(context.Background())
		}
	}()
	for i, a := range []*string{&addr, &addr2} {
		cfg := daemon.Config{Store: filepath.Join(dir, fmt.Sprint(i)),
			Logger: slog.New(slog.DiscardHandler)}
		cfg.Incoming.Transport.Addr = "127.0.0.1:0"
		d, err := daemon.Start(context.Background(), cfg)
		if err != nil {
			return 0, err
		}
		daemons = append(daemons, d)
		*a = d.Addr().String()
	}
	return m.Run(), nil
}
