package daemon

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// SIGHUP reloads, from the -config file, what can change while the daemon runs: -log-level,
// -log-format and the auth tokens (-auth-tokens, -auth-token-file). A setting given on the
// command line or in the environment keeps its value (it wins over the file, as at start). A
// reload that fails changes nothing and is logged; no SIGHUP ends the process.

// errNoConfigFile: SIGHUP without a -config file has nothing to reload.
var errNoConfigFile = errors.New("no -config file to reload (settings from the command line and the environment are fixed)")

// hupSignals starts catching SIGHUP (its default action ends the process): call it before
// anything a supervisor or a closing terminal could interrupt. stop releases it.
func hupSignals() (ch chan os.Signal, stop func()) {
	ch = make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// reloadSignals serves SIGHUPs from ch until ctx ends: each reloads the file into the running
// logging and d's sessions.
func reloadSignals(ctx context.Context, ch <-chan os.Signal, cfg *config, logs *logControl, d *Daemon) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			next, tokens, err := cfg.reload()
			if err != nil {
				logs.log.Error("SIGHUP: config not reloaded; the daemon goes on as it was", "config", cfg.configFile, "err", err)
				continue
			}
			logs.set(next.logLevel, next.logFormat) // checked by reload
			d.SetTokens(tokens)
			cfg.logLevel, cfg.logFormat, cfg.tokens, cfg.tokenFile = next.logLevel, next.logFormat, next.tokens, next.tokenFile
			logs.announce("config reloaded", "config", cfg.configFile, "log_level", next.logLevel,
				"log_format", next.logFormat, "auth_tokens", len(tokens))
		}
	}
}

// reload reads the -config file again and returns the reloadable settings it gives (those the
// command line or the environment set keep their running values) and the auth tokens they
// name, or why they cannot be used.
func (cfg *config) reload() (*config, []string, error) {
	if cfg.configFile == "" {
		return nil, nil, errNoConfigFile
	}
	next := &config{}
	fs := newFlagSet(next)
	if err := readConfigFile(cfg.configFile, fs, cfg.fixed); err != nil {
		return nil, nil, err
	}
	for name, keep := range map[string]*string{"log-level": &cfg.logLevel, "log-format": &cfg.logFormat,
		"auth-tokens": &cfg.tokens, "auth-token-file": &cfg.tokenFile} {
		if cfg.fixed[name] {
			fs.Set(name, *keep) // the running value, which this flag took at start
		}
	}
	if _, err := checkLog(next.logLevel, next.logFormat); err != nil {
		return nil, nil, err
	}
	tokens, err := loadTokens(next.tokens, next.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	return next, tokens, nil
}
