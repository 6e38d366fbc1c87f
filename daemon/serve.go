package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/buildinfo"
	"github.com/pipecache/pipecache/transport/wire"
)

// serve runs the daemon (and its admin endpoint) until ctx ends, then stops it without losing
// an acknowledged write. It returns the process's exit code.
func serve(ctx context.Context, cfg *config, logs *logControl, hup <-chan os.Signal) int {
	log := logs.log
	build := buildinfo.Read()
	cfg.daemon.Version, cfg.daemon.Logger = build.String(), log
	var err error
	if cfg.daemon.Sessions.Tokens, err = loadTokens(cfg.tokens, cfg.tokenFile); err != nil {
		log.Error("auth tokens", "err", err)
		return 2
	}
	if cfg.keyFile != "" {
		b, err := os.ReadFile(cfg.keyFile)
		if err == nil {
			cfg.daemon.CryptKey, err = wire.ParseKey(b)
		}
		if err != nil {
			log.Error("-crypt-key-file", "err", err)
			return 2
		}
	}
	adm, err := startAdmin(cfg, build, log)
	if err != nil {
		log.Error("admin endpoint (choose another address with -admin, or -admin off)", "err", err)
		return 1
	}
	if adm != nil {
		defer stopAdmin(adm, log)
		cfg.daemon.Outgoing.Observer = adm.StoreObserver()
		cfg.daemon.Cache.ExecObserver = adm.ExecObserver()
	}
	d, err := Start(ctx, cfg.daemon)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	if adm != nil {
		adm.SetDaemon(d)
	}
	go reloadSignals(ctx, hup, cfg, logs, d)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Stop(sctx); err != nil {
		return 1
	}
	return 0
}

// startAdmin starts the admin endpoint, unless -admin turned it off (nil, nil).
func startAdmin(cfg *config, build buildinfo.Info, log *slog.Logger) (*admin.Server, error) {
	addr, err := adminAddr(cfg.admin, cfg.daemon.Incoming.Transport.Addr)
	if err != nil || addr == "" {
		return nil, err
	}
	adm, err := admin.Listen(admin.Config{Addr: addr, Build: build, Logger: log.With("component", "admin")})
	if err != nil {
		return nil, err
	}
	log.Info("admin endpoint listening", "addr", adm.Addr().String(), "paths", admin.Paths)
	return adm, nil
}

func stopAdmin(adm *admin.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := adm.Shutdown(ctx); err != nil {
		log.Warn("admin endpoint", "err", err)
	}
}

// loadTokens gathers auth tokens from the flag (or PIPECACHE_AUTH_TOKENS) and the token file.
func loadTokens(list, file string) ([]string, error) {
	var tokens []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-auth-token-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				tokens = append(tokens, t)
			}
		}
	}
	return tokens, nil
}
